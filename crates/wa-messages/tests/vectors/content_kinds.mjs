import { generateWAMessageContent } from '@whiskeysockets/baileys/lib/Utils/messages.js'
import { proto } from '@whiskeysockets/baileys/WAProto/index.js'

const cases = [
  ['group_invite', { groupInvite: { inviteCode: 'AbCdEf123456', inviteExpiration: 1700600000, text: 'join us', jid: '120363000000000001@g.us', subject: 'Team' } }],
  ['button_reply_template', { buttonReply: { displayText: 'Yes please', id: 'btn-yes', index: 1 }, type: 'template' }],
  ['button_reply_plain', { buttonReply: { displayText: 'No thanks', id: 'btn-no', index: 0 }, type: 'plain' }],
  ['list_reply', { listReply: { title: 'Pizza', listType: 1, singleSelectReply: { selectedRowId: 'row-2' }, description: 'with cheese' } }],
  ['album', { album: { expectedImageCount: 3, expectedVideoCount: 1 } }],
  ['album_item_text', { text: 'item', albumParentKey: { remoteJid: '15550000002@s.whatsapp.net', fromMe: true, id: '3EB0ALBUM0000000000001' } }],
]
const out = []
for (const [name, content] of cases) {
  const m = await generateWAMessageContent(content, { upload: async () => { throw new Error('no upload') } })
  const secret = m.messageContextInfo?.messageSecret
  const bytes = Buffer.from(proto.Message.encode(m).finish())
  out.push({ name, content, secret: secret ? Buffer.from(secret).toString('hex') : null, messageHex: bytes.toString('hex') })
}
console.log(JSON.stringify({ baileys: '7.0.0-rc14', cases: out }, null, 2))
