// Reads JSON texts, one per line, on stdin and writes each one's RFC 8785 canonical form (by
// the npm "canonicalize" package, an implementation independent of ours) on its own line, or
// "ERROR" when JSON.parse or canonicalize refuses it. Used by
// tests/integration/test_jcs_crosscheck.py.
import canonicalize from 'canonicalize';

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const text = Buffer.concat(chunks).toString('utf8');
const lines = text.split('\n');
if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
const out = lines.map((line) => {
  try {
    return canonicalize(JSON.parse(line));
  } catch (e) {
    return 'ERROR';
  }
});
process.stdout.write(out.map((s) => s + '\n').join(''));
