// A real peer: npm @medplum/hl7's MLLP client sends messages to Isthmus and reports each ACK.
// Usage: node medplum_send.mjs PORT FILE...   (each file holds one message; LF or CR segments)
// Prints one JSON line per message: {"file", "ack_code", "control_id"}; exit 1 on a transport error.
import { readFileSync } from 'node:fs';
import { Hl7Message } from '@medplum/core';
import { Hl7Client, ReturnAckCategory } from '@medplum/hl7';

const [port, ...files] = process.argv.slice(2);
const client = new Hl7Client({ host: '127.0.0.1', port: Number(port) });
try {
  for (const file of files) {
    const text = readFileSync(file, 'utf8').replace(/^\uFEFF/, '').replace(/\r?\n/g, '\r').trim();
    const msg = Hl7Message.parse(text);
    // A message that values MSH-15 asks for enhanced mode: Isthmus answers with a commit ACK
    // (CA) once the message is durable, so wait for the first ACK rather than an application ACK.
    const enhanced = (msg.getSegment('MSH')?.getField(15)?.toString() ?? '') !== '';
    const ack = await client.sendAndWait(msg, {
      timeoutMs: 10000,
      returnAck: enhanced ? ReturnAckCategory.FIRST : ReturnAckCategory.APPLICATION,
    });
    const msa = ack.getSegment('MSA');
    console.log(JSON.stringify({ file, ack_code: msa?.getField(1)?.toString() ?? '',
                                 control_id: msa?.getField(2)?.toString() ?? '' }));
  }
} catch (err) {
  console.error(`medplum client error: ${err.message}`);
  process.exitCode = 1;
} finally {
  await client.close();
}
