// The graphql-js side of the GraphQL differential test (tests/integration/test_graphql_js.py).
// Usage: node graphql_diff.js SCHEMA.graphql < requests.jsonl > responses.jsonl
// Builds the schema from the SDL the C engine printed, resolves it with the same data and the
// same resolvers as tests/tools/graphql_testschema.c, and prints one response per request line.
// With --introspect it prints instead: the introspection query, and whether buildClientSchema
// of the C engine's answer (read from stdin) prints back to the same SDL.
'use strict';
const fs = require('fs');
const readline = require('readline');
const g = require('graphql');

const sdl = fs.readFileSync(process.argv[2], 'utf8');
const schema = g.buildSchema(sdl);
const data = {
  people: [
    { id: 'p1', name: 'Ada', role: 'ADMIN', age: 36, score: 9.5, tags: ['math', 'engines'], friends: ['p2', 'p3'], best: 'p2' },
    { id: 'p2', name: 'Grace', role: 'USER', age: 85, score: 7.25, tags: [], friends: ['p1'], best: 'p1' },
    { id: 'p3', name: 'Linus', role: 'GUEST', age: null, score: 1e3, tags: ['kernel'], friends: [], best: null },
    { id: 'p4', name: 'Barbara', role: 'USER', age: 80, score: 0.1, tags: ['clu'], friends: ['p1', 'p2', 'p3'], best: 'p3' },
    { id: 'p5', name: 'Ken', role: null, age: 79, score: -2, tags: ['unix', 'go'], friends: ['p4'], best: 'p9' },
  ],
  payments: [
    { id: 'pay1', amount: 10.5, currency: 'EUR', payerId: 'p1', status: 'ADMIN' },
    { id: 'pay2', amount: 99, currency: 'USD', payerId: 'p2', status: 'USER' },
    { id: 'pay3', amount: 0.01, currency: null, payerId: 'p1', status: null },
    { id: 'pay4', amount: 1234567.875, currency: 'EUR', payerId: 'p4', status: 'GUEST' },
    { id: 'pay5', amount: null, currency: 'GBP', payerId: 'p5', status: 'USER' },
    { id: 'pay6', amount: 3, currency: 'EUR', payerId: 'p9', status: 'BOGUS' },
  ],
};
const find = (id) => data.people.find((p) => p.id === id) ?? null;
const resolvers = {
  'Query.hero': () => data.people[0],
  'Query.person': (s, a) => find(a.id),
  'Query.people': (s, a) => data.people
    .filter((p) => a.role == null || p.role === a.role)
    .slice(0, a.first == null ? 0 : Math.max(0, a.first)),
  'Query.payments': (s, a) => {
    const out = [];
    const f = a.filter ?? {};
    for (const p of data.payments) {
      if (typeof a.limit === 'number' && out.length >= a.limit) break;
      if (f.currency != null && p.currency !== f.currency) continue;
      if (typeof f.minAmount === 'number' && !(typeof p.amount === 'number' && p.amount >= f.minAmount)) continue;
      out.push(p);
    }
    return out;
  },
  'Query.echo': (s, a) => a,
  'Query.need': (s, a) => a,
  'Query.nonNullNull': () => null,
  'Query.failing': () => { throw new Error('boom'); },
  'Person.mustFail': () => { throw new Error('boom'); },
  'Query.numbers': () => [1, 2, null, 4],
  'Query.badInt': () => 2 ** 40,
  'Person.friends': (s, a) => s.friends
    .slice(0, typeof a.first === 'number' ? Math.max(0, a.first) : undefined).map(find),
  'Person.bestFriend': (s) => find(s.best),
  'Payment.payer': (s) => find(s.payerId),
};
function fieldResolver(source, args, context, info) {
  const r = resolvers[info.parentType.name + '.' + info.fieldName];
  return r ? r(source, args) : g.defaultFieldResolver(source, args, context, info);
}

// JSON scalar: the C engine returns what its resolver gave; graphql-js's JSON.stringify of a
// plain object does the same.
async function main() {
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of rl) {
    if (!line.trim()) continue;
    const req = JSON.parse(line);
    let res;
    try {
      res = g.graphqlSync({
        schema, source: req.query, variableValues: req.variables ?? undefined,
        operationName: req.operationName ?? undefined, fieldResolver, rootValue: {},
      });
    } catch (e) {
      res = { crash: String(e) };
    }
    process.stdout.write(JSON.stringify(res) + '\n');
  }
}

if (process.argv[3] === '--introspect') {
  // "full": every option graphql-js 17 has; "plain": the defaults (what a client asks by default)
  const q = process.argv[5] === 'plain' ? g.getIntrospectionQuery() : g.getIntrospectionQuery({
    specifiedByUrl: true, directiveIsRepeatable: true, schemaDescription: true,
    inputValueDeprecation: true, oneOf: true });
  if (process.argv[4] === 'query') {
    process.stdout.write(JSON.stringify({ query: q }) + '\n');
  } else {
    const answer = JSON.parse(fs.readFileSync(0, 'utf8'));
    const client = g.buildClientSchema(answer.data);
    const printed = g.printSchema(client);
    process.stdout.write(JSON.stringify({ same: printed === sdl, printed }) + '\n');
  }
} else {
  main();
}
