// Writes wam.json: WAM buffers Baileys' encodeWAM makes for a set of events (the
// inputs are rebuilt in tests/wam.rs). Buffers over 1 KiB are given by length, first
// 64 bytes and SHA-256. Run next to the installed package: node wam.mjs > wam.json
import { encodeWAM } from '@whiskeysockets/baileys/lib/WAM/encode.js'
import { BinaryInfo } from '@whiskeysockets/baileys/lib/WAM/BinaryInfo.js'
import { createHash } from 'node:crypto'

const cases = [
  ['no_fields', 7, [{ WamDroppedEvent: { props: {}, globals: {} } }]],
  ['one_int_field', 1, [{ WamDroppedEvent: { props: { droppedEventCode: 5 }, globals: {} } }]],
  ['zero_and_one', 2, [
    { WamDroppedEvent: { props: { droppedEventCount: 0 }, globals: {} } },
    { WamDroppedEvent: { props: { droppedEventCount: 1 }, globals: {} } }]],
  ['bool_true', 3, [{ WamDroppedEvent: { props: { isFromWamsys: true }, globals: {} } }]],
  ['int_widths', 300, [
    { WamDroppedEvent: { props: { droppedEventCode: -100 }, globals: {} } },
    { WamDroppedEvent: { props: { droppedEventCode: 300 }, globals: {} } },
    { WamDroppedEvent: { props: { droppedEventCode: -70000 }, globals: {} } },
    { WamDroppedEvent: { props: { droppedEventCode: 1099511627776 }, globals: {} } }]],
  ['float', 4, [{ WamDroppedEvent: { props: { droppedEventCode: 1.5 }, globals: {} } }]],
  ['globals_and_strings', 65535, [
    { MetaVerifiedInteraction: { props: { businessOwnerJid: '15550000001@s.whatsapp.net' }, globals: { appBuild: 4, abKey2: 'x'.repeat(300), appIsBetaRelease: false } } }]],
  ['long_string', 9, [{ MetaVerifiedInteraction: { props: { businessOwnerJid: 'y'.repeat(70000) }, globals: {} } }]],
  ['three_fields', 10, [{ WamDroppedEvent: { props: { droppedEventCode: 2, droppedEventCount: 3, isFromWamsys: false }, globals: {} } }]],
]
const out = []
for (const [name, sequence, events] of cases) {
  const buffer = encodeWAM(new BinaryInfo({ sequence, events }))
  const entry = { name, sequence, len: buffer.length, sha256: createHash('sha256').update(buffer).digest('hex') }
  if (buffer.length <= 1024) entry.hex = buffer.toString('hex')
  else entry.prefixHex = buffer.subarray(0, 64).toString('hex')
  out.push(entry)
}
console.log(JSON.stringify({ baileys: '7.0.0-rc14', cases: out }, null, 1))
