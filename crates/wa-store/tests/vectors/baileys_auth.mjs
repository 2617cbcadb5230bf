import { rmSync, readdirSync } from 'fs'
import { useMultiFileAuthState } from '@whiskeysockets/baileys/lib/Utils/use-multi-file-auth-state.js'
import { addTransactionCapability } from '@whiskeysockets/baileys/lib/Utils/auth-utils.js'
import { Curve, generateSignalPubKey } from '@whiskeysockets/baileys/lib/Utils/crypto.js'
import { encodeSyncdPatch, newLTHashState } from '@whiskeysockets/baileys/lib/Utils/chat-utils.js'
import { makeLibSignalRepository } from '@whiskeysockets/baileys/lib/Signal/libsignal.js'
import { proto } from '@whiskeysockets/baileys/WAProto/index.js'

const [dir, peerDir] = [process.argv[2], process.argv[3]]
rmSync(dir, { recursive: true, force: true })
rmSync(peerDir, { recursive: true, force: true })
const logger = { level: 'silent', trace() {}, debug() {}, info() {}, warn() {}, error() {}, child() { return logger } }
const hex = b => Buffer.from(b).toString('hex')

// Ann: the account being moved (a linked companion, device 7).
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
// A session file that is not a session record: reported, not imported.
await state.keys.set({ 'session': { '15550009999.0': Buffer.from('not a session we can read') } })

// Bob: the peer (a phone, device 0), in a folder of its own.
const peer = await useMultiFileAuthState(peerDir)
const bobPreKey = Curve.generateKeyPair()
await peer.state.keys.set({ 'pre-key': { 1: bobPreKey } })
await peer.saveCreds()

const tx = keys => addTransactionCapability(keys, logger, { maxCommitRetries: 1, delayBetweenTriesMs: 1 })
const ann = makeLibSignalRepository({ creds: c, keys: tx(state.keys) }, logger)
const bob = makeLibSignalRepository({ creds: peer.state.creds, keys: tx(peer.state.keys) }, logger)
const ANN = '15550001111:7@s.whatsapp.net', BOB = '15550002222@s.whatsapp.net', GROUP = '120363000000000001@g.us'
const b = peer.state.creds
await ann.injectE2ESession({ jid: BOB, session: {
  registrationId: b.registrationId, identityKey: generateSignalPubKey(b.signedIdentityKey.public),
  signedPreKey: { keyId: b.signedPreKey.keyId, publicKey: generateSignalPubKey(b.signedPreKey.keyPair.public), signature: b.signedPreKey.signature },
  preKey: { keyId: 1, publicKey: generateSignalPubKey(bobPreKey.public) } } })

const text = s => Buffer.from(s)
const send = async (from, to, s) => from.encryptMessage({ jid: to, data: text(s) })
const recv = async (at, from, m, s) => {
  const p = await at.decryptMessage({ jid: from, type: m.type, ciphertext: m.ciphertext })
  if (Buffer.from(p).toString() !== s) throw new Error('node decrypt mismatch ' + s)
}
const out = m => ({ type: m.type, ciphertext: hex(m.ciphertext) })
await recv(bob, ANN, await send(ann, BOB, 'a1'), 'a1')
await recv(ann, BOB, await send(bob, ANN, 'b1'), 'b1')
const b2 = await send(bob, ANN, 'b2')
await recv(ann, BOB, await send(bob, ANN, 'b3'), 'b3')
await recv(bob, ANN, await send(ann, BOB, 'a2'), 'a2')
await recv(ann, BOB, await send(bob, ANN, 'b4'), 'b4')
const b5 = await send(bob, ANN, 'b5')
const a3 = await send(ann, BOB, 'a3')

// Sender keys, both ways.
const ga1 = await ann.encryptGroupMessage({ group: GROUP, meId: ANN, data: text('g-a1') })
await bob.processSenderKeyDistributionMessage({ item: { groupId: GROUP, axolotlSenderKeyDistributionMessage: ga1.senderKeyDistributionMessage }, authorJid: ANN })
if (Buffer.from(await bob.decryptGroupMessage({ group: GROUP, authorJid: ANN, msg: ga1.ciphertext })).toString() !== 'g-a1') throw new Error('g-a1')
const ga2 = await ann.encryptGroupMessage({ group: GROUP, meId: ANN, data: text('g-a2') })
const gb1 = await bob.encryptGroupMessage({ group: GROUP, meId: BOB, data: text('g-b1') })
await ann.processSenderKeyDistributionMessage({ item: { groupId: GROUP, axolotlSenderKeyDistributionMessage: gb1.senderKeyDistributionMessage }, authorJid: BOB })
await ann.decryptGroupMessage({ group: GROUP, authorJid: BOB, msg: gb1.ciphertext })
const gb2 = await bob.encryptGroupMessage({ group: GROUP, meId: BOB, data: text('g-b2') })
const gb3 = await bob.encryptGroupMessage({ group: GROUP, meId: BOB, data: text('g-b3') })
await ann.decryptGroupMessage({ group: GROUP, authorJid: BOB, msg: gb3.ciphertext })
const gb4 = await bob.encryptGroupMessage({ group: GROUP, meId: BOB, data: text('g-b4') })
// Which devices have Ann's sender key, as Baileys' group send records it.
await state.keys.set({ 'sender-key-memory': { [GROUP]: { [BOB]: true, '15550003333:2@s.whatsapp.net': true } } })

// App state: two patches applied to regular_high, a third left for the importer's user.
const getKey = async id => (await state.keys.get('app-state-sync-key', [id]))[id]
let ah = newLTHashState()
const patches = []
for (const [i, [index, action]] of [
  [['mute', '15550002222@s.whatsapp.net'], { muteAction: { muted: true, muteEndTimestamp: 1800000000 } }],
  [['pin_v1', '15550002222@s.whatsapp.net'], { pinAction: { pinned: true } }],
  [['pin_v1', '15550002222@s.whatsapp.net'], { pinAction: { pinned: false } }]
].entries()) {
  const { patch, state: next } = await encodeSyncdPatch({ type: 'regular_high', index, apiVersion: 5, operation: 0,
    syncAction: { timestamp: 1700000000000 + i, ...action } }, 'AAAAAAAB', ah, getKey)
  patches.push({ version: next.version, patch: hex(proto.SyncdPatch.encode({ ...patch, version: { version: next.version } }).finish()) })
  if (i < 2) { ah = next; await state.keys.set({ 'app-state-sync-version': { regular_high: ah } }) }
}

console.log(JSON.stringify({ identityPublic: hex(c.signedIdentityKey.public),
  signedPreKeyId: c.signedPreKey.keyId, registrationId: c.registrationId,
  preKeyPublics: Object.fromEntries(Object.entries(preKeys).map(([k, v]) => [k, hex(v.public)])),
  accountHex: hex(adv),
  sessionFiles: readdirSync(dir).filter(f => f.startsWith('session-')).sort(),
  peerSessionFiles: readdirSync(peerDir).filter(f => f.startsWith('session-')).sort(),
  peerIdentityPublic: hex(b.signedIdentityKey.public), peerRegistrationId: b.registrationId,
  group: GROUP,
  toAnn: { b2: out(b2), b5: out(b5) }, toPeer: { a3: out(a3) },
  groupToPeer: { 'g-a2': hex(ga2.ciphertext) },
  groupToAnn: { 'g-b2': hex(gb2.ciphertext), 'g-b4': hex(gb4.ciphertext) },
  appState: { collection: 'regular_high', version: ah.version, hash: hex(ah.hash),
    indexValueMap: Object.fromEntries(Object.entries(ah.indexValueMap).map(([k, v]) => [hex(Buffer.from(k, 'base64')), hex(v.valueMac)])),
    nextPatch: patches[2] } }, null, 1))
