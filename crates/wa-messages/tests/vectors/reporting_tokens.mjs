import { createHash } from 'crypto'
import { proto } from '@whiskeysockets/baileys/WAProto/index.js'
import { getMessageReportingToken, shouldIncludeReportingToken, extractReportingTokenContent } from '@whiskeysockets/baileys/lib/Utils/reporting-utils-x.js'

// deterministic bytes: SHA-256 counter stream keyed by a label
const det = (label, n) => {
  let out = Buffer.alloc(0); let i = 0
  while (out.length < n) { out = Buffer.concat([out, createHash('sha256').update(`${label}/${i++}`).digest()]) }
  return out.subarray(0, n)
}
const own = '15550001111@s.whatsapp.net'
const peer = '15550002222@s.whatsapp.net'
const group = '120363000000000001@g.us'
const ownLid = '100000000000001@lid'
const peerLid = '200000000000002@lid'
const thumb = det('thumb', 40)
const cases = [
  ['text', { conversation: 'Hello reporting' }, own, peer],
  ['extended_text_quote_mention', { extendedTextMessage: { text: 'hi @15550003333 see https://example.com', matchedText: 'https://example.com', title: 'Example', description: 'An example page', previewType: 0, contextInfo: { stanzaId: 'ABCDEF0123456789', participant: peer, quotedMessage: { conversation: 'quoted' }, mentionedJid: ['15550003333@s.whatsapp.net'], isForwarded: true, forwardingScore: 2 } } }, own, peer],
  ['image', { imageMessage: { url: 'https://mmg.whatsapp.net/x', mimetype: 'image/jpeg', caption: 'a caption', fileSha256: det('fs', 32), fileLength: 12345, height: 640, width: 480, mediaKey: det('mk', 32), fileEncSha256: det('fe', 32), directPath: '/v/t62/x', jpegThumbnail: thumb, contextInfo: { stanzaId: 'Q1', participant: peer, quotedMessage: { conversation: 'q' } } } }, own, peer],
  ['location', { locationMessage: { degreesLatitude: 52.52, degreesLongitude: 13.405, name: 'Berlin', address: 'Mitte', url: 'https://maps', comment: 'here' } }, own, peer],
  ['contact', { contactMessage: { displayName: 'Ann', vcard: 'BEGIN:VCARD\nVERSION:3.0\nFN:Ann\nEND:VCARD' } }, own, peer],
  ['document', { documentMessage: { url: 'https://mmg/d', mimetype: 'application/pdf', title: 'doc.pdf', fileSha256: det('dfs', 32), fileLength: 999, pageCount: 3, mediaKey: det('dmk', 32), fileName: 'doc.pdf', fileEncSha256: det('dfe', 32), directPath: '/v/d', caption: 'read me' } }, own, peer],
  ['edit', { protocolMessage: { key: { remoteJid: peer, fromMe: true, id: 'EDITED0001' }, type: 14, editedMessage: { conversation: 'edited text' }, timestampMs: 1700000000000 } }, own, peer],
  ['revoke', { protocolMessage: { key: { remoteJid: peer, fromMe: true, id: 'REVOKED001' }, type: 0 } }, own, peer],
  ['poll_v3', { pollCreationMessageV3: { name: 'Lunch?', options: [{ optionName: 'Pizza' }, { optionName: 'Sushi' }], selectableOptionsCount: 1 } }, own, peer],
  ['video', { videoMessage: { url: 'https://mmg/v', mimetype: 'video/mp4', fileSha256: det('vfs', 32), fileLength: 5555, seconds: 7, mediaKey: det('vmk', 32), caption: 'clip', gifPlayback: false, height: 320, width: 240 } }, own, peer],
  ['audio_ptt', { audioMessage: { url: 'https://mmg/a', mimetype: 'audio/ogg; codecs=opus', fileSha256: det('afs', 32), fileLength: 2222, seconds: 3, ptt: true, mediaKey: det('amk', 32) } }, own, peer],
  ['sticker', { stickerMessage: { url: 'https://mmg/s', fileSha256: det('sfs', 32), mediaKey: det('smk', 32), mimetype: 'image/webp', height: 512, width: 512, isAnimated: false } }, own, peer],
  ['group_text', { extendedTextMessage: { text: 'to the group' } }, own, group],
  ['lid_text', { conversation: 'over lid' }, ownLid, peerLid],
  ['view_once_image', { viewOnceMessageV2: { message: { imageMessage: { mimetype: 'image/jpeg', caption: 'once', mediaKey: det('vomk', 32) } } } }, own, peer],
]
const out = []
for (const [name, content, sender, chat] of cases) {
  const secret = det(`secret/${name}`, 32)
  const msg = { ...content, messageContextInfo: { messageSecret: secret, deviceListMetadataVersion: 2 } }
  const encoded = Buffer.from(proto.Message.encode(proto.Message.create(msg)).finish())
  const id = '3EB0' + det(`id/${name}`, 8).toString('hex').toUpperCase()
  const include = shouldIncludeReportingToken(proto.Message.decode(encoded))
  // fromMe=false so that Baileys derives the key from (id, participant=sender, remoteJid=chat)
  const node = await getMessageReportingToken(encoded, proto.Message.decode(encoded), { id, fromMe: false, remoteJid: chat, participant: sender })
  const contentBytes = extractReportingTokenContent(encoded, new Map())
  out.push({ name, include, id, sender, chat, secretHex: secret.toString('hex'), messageHex: encoded.toString('hex'),
    tokenHex: node ? Buffer.from(node.content[0].content).toString('hex') : null })
}
for (const [name, content] of [['reaction', { reactionMessage: { key: { remoteJid: peer, fromMe: false, id: 'R1' }, text: '👍', senderTimestampMs: 1 } }], ['poll_update', { pollUpdateMessage: { pollCreationMessageKey: { remoteJid: peer, id: 'P1' }, vote: { encPayload: det('ep', 16), encIv: det('ei', 12) } } }]]) {
  const encoded = Buffer.from(proto.Message.encode(proto.Message.create(content)).finish())
  out.push({ name, include: shouldIncludeReportingToken(proto.Message.decode(encoded)), messageHex: encoded.toString('hex') })
}
console.log(JSON.stringify({ source: '@whiskeysockets/baileys@7.0.0-rc14 lib/Utils/reporting-utils.js (getMessageReportingToken, shouldIncludeReportingToken); key derived with fromMe=false, participant=sender, remoteJid=chat', cases: out }, null, 1))
