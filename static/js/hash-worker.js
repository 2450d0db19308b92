// The uploader's Web Worker: one pass over the file gives the whole file's SHA-256 (hash-wasm,
// incremental, on this thread) and every part's (WebCrypto, off this thread, at the same time),
// so the page can declare and upload a part as soon as it has been read, while later parts are
// still being hashed. Nothing here touches the page: it posts messages.
//
//   in:  {file, partSize, hashWasmUrl}
//   out: {type: "hasher", name}                 hash-wasm or javascript (WebAssembly refused)
//        {type: "progress", bytes}              bytes read and hashed so far
//        {type: "part", index, size, hash, checksum}   hex digest and its base64 (S3's header)
//        {type: "done", hash}                   the whole file's hex SHA-256
//        {type: "error", message}
"use strict";

const MiB = 1024 * 1024;
const READ = 4 * MiB; // progress is reported after each slice this big

const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

// The incremental interface of hash-wasm's hasher (update, digest), in plain JavaScript, for a
// policy that refuses WebAssembly.
function PlainSHA256() {
  this.state = new Int32Array([
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
  ]);
  this.words = new Int32Array(64);
  this.pending = new Uint8Array(64);
  this.pendingLength = 0;
  this.length = 0;
}

PlainSHA256.prototype.update = function (data) {
  let i = 0;
  this.length += data.length;
  if (this.pendingLength) {
    i = Math.min(64 - this.pendingLength, data.length);
    this.pending.set(data.subarray(0, i), this.pendingLength);
    this.pendingLength += i;
    if (this.pendingLength < 64) return;
    this.block(this.pending, 0);
    this.pendingLength = 0;
  }
  for (; i + 64 <= data.length; i += 64) this.block(data, i);
  this.pending.set(data.subarray(i), 0);
  this.pendingLength = data.length - i;
};

PlainSHA256.prototype.block = function (bytes, at) {
  const w = this.words;
  const h = this.state;
  for (let t = 0; t < 16; t++) {
    const j = at + 4 * t;
    w[t] = (bytes[j] << 24) | (bytes[j + 1] << 16) | (bytes[j + 2] << 8) | bytes[j + 3];
  }
  for (let t = 16; t < 64; t++) {
    const x = w[t - 15];
    const y = w[t - 2];
    const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
    const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
    w[t] = (w[t - 16] + s0 + w[t - 7] + s1) | 0;
  }
  let a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
  for (let t = 0; t < 64; t++) {
    const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const t1 = (k + s1 + ((e & f) ^ (~e & g)) + K[t] + w[t]) | 0;
    const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const t2 = (s0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
    k = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
  }
  h[0] = (h[0] + a) | 0; h[1] = (h[1] + b) | 0; h[2] = (h[2] + c) | 0; h[3] = (h[3] + d) | 0;
  h[4] = (h[4] + e) | 0; h[5] = (h[5] + f) | 0; h[6] = (h[6] + g) | 0; h[7] = (h[7] + k) | 0;
};

PlainSHA256.prototype.digest = function () {
  const bits = this.length * 8;
  const tail = new Uint8Array(this.pendingLength < 56 ? 64 : 128);
  tail.set(this.pending.subarray(0, this.pendingLength));
  tail[this.pendingLength] = 0x80;
  const view = new DataView(tail.buffer);
  view.setUint32(tail.length - 8, Math.floor(bits / 0x100000000));
  view.setUint32(tail.length - 4, bits >>> 0);
  for (let at = 0; at < tail.length; at += 64) this.block(tail, at);
  return Array.from(this.state, function (x) { return (x >>> 0).toString(16).padStart(8, "0"); }).join("");
};

async function createHasher(hashWasmUrl) {
  try {
    importScripts(hashWasmUrl);
    const hasher = await self.hashwasm.createSHA256();
    hasher.init();
    return { hasher: hasher, name: "hash-wasm" };
  } catch (e) {
    return { hasher: new PlainSHA256(), name: "javascript" }; // WebAssembly refused, or no hash-wasm
  }
}

function hex(bytes) {
  let text = "";
  for (let i = 0; i < bytes.length; i++) text += bytes[i].toString(16).padStart(2, "0");
  return text;
}

function base64(bytes) {
  let text = "";
  for (let i = 0; i < bytes.length; i++) text += String.fromCharCode(bytes[i]);
  return btoa(text);
}

// A part's SHA-256 by WebCrypto, which runs beside this thread's whole-file hashing; without
// WebCrypto (a page not served securely, other than from localhost) a plain one.
async function partDigest(buffer) {
  if (self.crypto && self.crypto.subtle) {
    return new Uint8Array(await self.crypto.subtle.digest("SHA-256", buffer));
  }
  const plain = new PlainSHA256();
  plain.update(new Uint8Array(buffer));
  const text = plain.digest();
  return new Uint8Array(text.match(/../g).map(function (h) { return parseInt(h, 16); }));
}

// Each part is read whole, once: the same bytes feed the whole-file hash (a slice at a time,
// reporting progress) and the part's digest, with no copy between them.
async function hashFile(file, partSize, hashWasmUrl) {
  const made = await createHasher(hashWasmUrl);
  self.postMessage({ type: "hasher", name: made.name });
  const hasher = made.hasher;
  const pending = [];
  let index = 0;
  for (let start = 0; start < file.size; start += partSize) {
    index += 1;
    const end = Math.min(file.size, start + partSize);
    const buffer = await file.slice(start, end).arrayBuffer();
    const bytes = new Uint8Array(buffer);
    const n = index;
    const digest = partDigest(buffer); // off this thread, while the loop below hashes
    for (let at = 0; at < bytes.length; at += READ) {
      hasher.update(bytes.subarray(at, Math.min(bytes.length, at + READ)));
      self.postMessage({ type: "progress", bytes: start + Math.min(bytes.length, at + READ) });
    }
    pending.push(digest.then(function (d) {
      self.postMessage({ type: "part", index: n, size: end - start, hash: hex(d), checksum: base64(d) });
    }));
    if (pending.length > 2) await pending.shift(); // bound the parts held in memory
  }
  await Promise.all(pending);
  self.postMessage({ type: "done", hash: hasher.digest("hex") });
}

self.onmessage = function (event) {
  const job = event.data;
  hashFile(job.file, job.partSize, job.hashWasmUrl).catch(function (error) {
    self.postMessage({
      type: "error",
      message: "The file could not be read (" + (error && error.message ? error.message : error) +
        "); it may have changed or been moved. Choose it again.",
    });
  });
};
