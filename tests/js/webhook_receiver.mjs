// A webhook receiver for scripts/bench-events.py: answers every POST 200 and counts them per
// path. Prints {"port":N} on start; on a line "stats" on stdin prints
// {"paths":{"/h0":count,...},"first":ms,"last":ms} (Date.now() of the first and last POST).
import http from "node:http";
import readline from "node:readline";

const counts = {};
let first = 0;
let last = 0;
const server = http.createServer((req, res) => {
  req.on("data", () => {});
  req.on("end", () => {
    counts[req.url] = (counts[req.url] || 0) + 1;
    last = Date.now();
    if (!first) first = last;
    res.writeHead(200, { "Content-Length": "2" });
    res.end("ok");
  });
});
server.keepAliveTimeout = 60000;
server.listen(0, "127.0.0.1", () => {
  console.log(JSON.stringify({ port: server.address().port }));
});
readline.createInterface({ input: process.stdin }).on("line", (line) => {
  if (line.trim() === "stats") console.log(JSON.stringify({ paths: counts, first, last }));
  if (line.trim() === "quit") process.exit(0);
});
