import { rmSync } from 'fs'
import { useMultiFileAuthState } from '@whiskeysockets/baileys/lib/Utils/use-multi-file-auth-state.js'
import { Curve } from '@whiskeysockets/baileys/lib/Utils/crypto.js'
import { proto } from '@whiskeysockets/baileys/WAProto/index.js'

const dir = process.argv[2]
rmSync(dir, { recursive: true, force: true })
const { state, saveCreds } = await useMultiFileAuthState(dir)
const c = state.creds
c.me = { id: '15550001111:7@s.whatsapp.net', lid: '100000000000011:7@lid', name: 'Ann' }
// A signed device identity as the phone sends it at pairing (contents are placeholders).
const adv = proto.ADVSignedDeviceIdentity.encode({
  details: Buffer.from('0801', 'hex'), accountSignatureKey: Buffer.alloc(32, 1),
  accountSignature: Buffer.alloc(64, 2), deviceSignature: Buffer.alloc(64, 3)
}).finish()
c.account = proto.ADVSignedDeviceIdentity.decode(adv)
c.platform = 'android'
c.registered = true
c.routingInfo = Buffer.from('0805080c', 'hex')
c.nextPreKeyId = 4
c.firstUnuploadedPreKeyId = 4
c.myAppStateKeyId = 'AAAAAAAB'
c.lastPropHash = '2V77qU'
await saveCreds()
const preKeys = {}
for (const id of [1, 2, 3]) preKeys[id] = Curve.generateKeyPair()
await state.keys.set({ 'pre-key': preKeys })
const keyData = proto.Message.AppStateSyncKeyData.decode(proto.Message.AppStateSyncKeyData.encode({
  keyData: Buffer.alloc(32, 9), fingerprint: { rawId: 7, currentIndex: 1, deviceIndexes: [0, 1] }, timestamp: 1700000000000
}).finish())
await state.keys.set({ 'app-state-sync-key': { 'AAAAAAAB': keyData } })
await state.keys.set({ 'lid-mapping': { '15550002222': '100000000000022', '100000000000022_reverse': '15550002222' } })
await state.keys.set({ 'session': { '15550002222.0': Buffer.from('not a session we can read') } })
console.log(JSON.stringify({ identityPublic: Buffer.from(c.signedIdentityKey.public).toString('hex'),
  signedPreKeyId: c.signedPreKey.keyId, registrationId: c.registrationId,
  preKeyPublics: Object.fromEntries(Object.entries(preKeys).map(([k, v]) => [k, Buffer.from(v.public).toString('hex')])),
  accountHex: Buffer.from(adv).toString('hex') }))
