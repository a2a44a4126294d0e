// The cron differential test's reference side (test_jobs_cron.py): npm cron-parser in UTC.
// One line in, "EXPR<TAB>AFTER_MS<TAB>N"; one line out: the next N ticks (Unix ms), space-separated,
// or "error: message".
'use strict';
const readline = require('readline');
const parser = require('cron-parser');

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const [expr, after, n] = line.split('\t');
  try {
    const it = parser.parseExpression(expr, { currentDate: new Date(Number(after)), utc: true });
    const out = [];
    for (let i = 0; i < Number(n); i++) out.push(it.next().getTime());
    console.log(out.join(' '));
  } catch (e) {
    console.log('error: ' + e.message);
  }
});
