// The ethers cross-check's reference side (test_eth_ethers.py): the same JSON lines as
// tests/tools/eth_tool.c (see its header), computed with ethers 6. Numbers out are decimal
// strings; a refused input prints {"error": message}. One more op, for the test to make logs:
// {"op":"enclog","sig":S,"values":[..]} -> {"topics":[..],"data":HEX} (Interface.encodeEventLog).
'use strict';
const readline = require('readline');
const {
  AbiCoder, EventFragment, FunctionFragment, Interface, SigningKey, Transaction,
  Wallet, keccak256,
} = require('ethers');

function norm(v) {
  if (typeof v === 'bigint') return v.toString();
  if (Array.isArray(v)) return Array.from(v, norm);
  if (v !== null && typeof v === 'object' && 'hash' in v && v._isIndexed) return v.hash;
  return v;
}

function dec(v) {
  return v === null || v === undefined ? null : BigInt(v).toString();
}

function tx(c) {
  const t = new Transaction();
  t.type = c.type;
  t.chainId = BigInt(c.chainId);
  t.nonce = Number(c.nonce);
  t.gasLimit = BigInt(c.gasLimit);
  t.to = c.to;
  t.value = BigInt(c.value);
  t.data = c.data;
  if (c.type === 2) {
    t.maxPriorityFeePerGas = BigInt(c.maxPriorityFeePerGas);
    t.maxFeePerGas = BigInt(c.maxFeePerGas);
  } else {
    t.gasPrice = BigInt(c.gasPrice);
  }
  t.signature = new SigningKey(c.key).sign(t.unsignedHash);
  return { raw: t.serialized, hash: t.hash };
}

function parse(c) {
  const t = Transaction.from(c.raw);
  return {
    type: t.type, chainId: dec(t.chainId), nonce: dec(t.nonce), gasLimit: dec(t.gasLimit),
    value: dec(t.value), gasPrice: t.type === 2 ? null : dec(t.gasPrice),
    maxPriorityFeePerGas: t.type === 2 ? dec(t.maxPriorityFeePerGas) : null,
    maxFeePerGas: t.type === 2 ? dec(t.maxFeePerGas) : null, to: t.to, data: t.data,
    yParity: t.signature.yParity, r: t.signature.r, s: t.signature.s, from: t.from, hash: t.hash,
  };
}

function abi(c) {
  const f = FunctionFragment.from('function ' + c.sig);
  const coder = AbiCoder.defaultAbiCoder();
  const encoded = coder.encode(f.inputs, c.values);
  return {
    canonical: f.format('sighash'), selector: f.selector,
    calldata: f.selector + encoded.slice(2), decoded: norm(coder.decode(f.inputs, encoded)),
  };
}

function log(c) {
  const frag = EventFragment.from('event ' + c.sig);
  const res = new Interface([frag]).decodeEventLog(frag, c.data, c.topics);
  const args = {};
  frag.inputs.forEach((input, i) => { args[input.name || String(i)] = norm(res[i]); });
  return { args };
}

function enclog(c) {
  const frag = EventFragment.from('event ' + c.sig);
  return new Interface([frag]).encodeEventLog(frag, c.values);
}

const ops = {
  address: (c) => ({ address: new Wallet(c.key).address }),
  keccak: (c) => ({ hash: keccak256(c.data) }),
  tx, parse, abi, log, enclog,
};

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const c = JSON.parse(line);
  let out;
  try {
    out = ops[c.op](c);
  } catch (e) {
    out = { error: e.shortMessage || e.message };
  }
  console.log(JSON.stringify(out));
});
