// RFC 6962 / RFC 9162 Merkle proofs, checked in the browser with WebCrypto's SHA-256 (written for the RTT panel).
// leaf hash = SHA-256(0x00 || leaf bytes); node hash = SHA-256(0x01 || left || right);
// inclusion proof check: RFC 9162 section 2.1.3.2.
"use strict";
const RttMerkle = (function () {
  async function sha256(parts) {
    let length = 0;
    for (const p of parts) length += p.length;
    const all = new Uint8Array(length);
    let at = 0;
    for (const p of parts) { all.set(p, at); at += p.length; }
    return new Uint8Array(await crypto.subtle.digest("SHA-256", all));
  }
  const leafHash = (leaf) => sha256([Uint8Array.of(0), leaf]);
  const nodeHash = (left, right) => sha256([Uint8Array.of(1), left, right]);

  function fromHex(hex) {
    if (!/^([0-9a-f]{2})*$/.test(hex)) throw new Error("not lowercase hex: " + hex);
    const out = new Uint8Array(hex.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
    return out;
  }
  const toHex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  function fromBase64(text) {
    const bin = atob(text);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  function equal(a, b) {
    if (a.length !== b.length) return false;
    let d = 0;
    for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
    return d === 0;
  }

  // Returns the root the path leads to, or null when the path cannot belong to a tree of this size.
  async function rootFromInclusion(leafHashBytes, index, size, path) {
    if (!(index >= 0 && index < size)) return null;
    let fn = index, sn = size - 1, r = leafHashBytes;
    for (const p of path) {
      if (sn === 0) return null;
      if (fn % 2 === 1 || fn === sn) {
        r = await nodeHash(p, r);
        if (fn % 2 === 0) {
          while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
        }
      } else {
        r = await nodeHash(r, p);
      }
      fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
    }
    return sn === 0 ? r : null;
  }

  // Checks that `leaf` (the entry's bytes) is entry `index` of the tree of `size` entries whose root is `rootHex`.
  async function verifyInclusion(leaf, index, size, pathHex, rootHex) {
    const lh = await leafHash(leaf);
    const root = await rootFromInclusion(lh, index, size, pathHex.map(fromHex));
    return { ok: root !== null && equal(root, fromHex(rootHex)), leafHash: toHex(lh), computedRoot: root ? toHex(root) : null };
  }

  // A signed tree head {"root","size","timestamp","sign":{"alg":"ed25519","key_id","sig"}}: the key id must be SHA-256 of the
  // key's raw bytes, and the Ed25519 signature must verify over the RFC 8785 bytes of the head without "sign" (for these
  // three members, ASCII strings and an integer, that is JSON.stringify with the members in sorted order).
  async function verifyHead(head, keys) {
    const key = keys.find((k) => k.key_id === head.sign.key_id);
    if (!key) return { ok: false, why: "signed by a key the workspace does not trust" };
    const raw = fromBase64(key.public_key);
    if ("sha256:" + toHex(await sha256([raw])) !== key.key_id) return { ok: false, why: "the key's id does not match its bytes" };
    const body = new TextEncoder().encode(JSON.stringify({ root: head.root, size: head.size, timestamp: head.timestamp }));
    let k;
    try {
      k = await crypto.subtle.importKey("raw", raw, { name: "Ed25519" }, false, ["verify"]);
    } catch (e) {
      return { ok: null, why: "this browser has no Ed25519 in WebCrypto" };
    }
    const ok = await crypto.subtle.verify({ name: "Ed25519" }, k, fromBase64(head.sign.sig), body);
    return { ok: ok, why: ok ? (key.revoked ? `signature ok; key ${key.revoked}` : "signature ok") : "the signature does not verify" };
  }

  return { sha256, leafHash, nodeHash, fromHex, toHex, fromBase64, equal, rootFromInclusion, verifyInclusion, verifyHead };
})();
