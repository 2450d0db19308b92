// Signs a binary in the browser: the private key file is read into this page's memory only,
// checked against the chosen signing key's public key, and only the signature is sent, in the
// ordinary signature form (#sign-form). The key file's input is outside that form and has no
// name, so no request can carry it.
//
// Each key type signs what binaries/signing.py verifies:
// - Ed25519: the 64-character hex SHA-256 of the content (WebCrypto Ed25519);
// - RSA: PKCS#1 v1.5 over the SHA-256, as `openssl dgst -sha256 -sign` (WebCrypto only signs a
//   message it hashes itself, so the digest is signed here: EMSA-PKCS1-v1_5 and BigInt CRT);
// - ECDSA P-256: over the SHA-256, DER-encoded as openssl writes it (vendored @noble/curves,
//   whose sign takes a prehashed digest; WebCrypto's would hash it again and give raw r||s).
(function () {
  "use strict";

  const section = document.getElementById("browser-signing");
  const form = document.getElementById("sign-form");
  if (!section || !form || !window.crypto || !crypto.subtle) return;
  const select = form.querySelector("select[name=signing_key]");
  const pasted = form.querySelector("textarea[name=signature]");
  const sigFile = form.querySelector("input[name=signature_file]");
  const keyFile = document.getElementById("private-key-file");
  const button = document.getElementById("sign-in-browser");
  const status = document.getElementById("sign-status");
  const digestHex = section.dataset.digest;
  section.hidden = false;

  class Refusal extends Error {}

  const ALGORITHMS = [
    ["ed25519", { name: "Ed25519" }],
    ["ecdsa-p256", { name: "ECDSA", namedCurve: "P-256" }],
    ["rsa", { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }],
  ];
  // DER DigestInfo of SHA-256 (RFC 8017, 9.2 note 1), followed by the 32-byte digest.
  const SHA256_INFO = "3031300d060960864801650304020105000420";

  function say(text, bad) {
    status.textContent = text;
    status.classList.toggle("error", Boolean(bad));
  }

  function hexToBytes(hex) {
    const out = new Uint8Array(hex.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
    return out;
  }

  function bytesToHex(bytes) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function b64urlToBytes(text) {
    const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const raw = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
    return Uint8Array.from(raw, (c) => c.charCodeAt(0));
  }

  function b64urlToBigInt(text) {
    return BigInt("0x" + (bytesToHex(b64urlToBytes(text)) || "0"));
  }

  function pemBody(text, label) {
    const match = text.match(
      new RegExp("-----BEGIN " + label + "-----([A-Za-z0-9+/=\\s]+)-----END " + label + "-----")
    );
    if (!match) return null;
    const raw = atob(match[1].replace(/\s+/g, ""));
    return Uint8Array.from(raw, (c) => c.charCodeAt(0));
  }

  function privateDer(text) {
    if (text.includes("-----BEGIN ENCRYPTED PRIVATE KEY-----")) {
      throw new Refusal(
        "This private key is encrypted, and the page cannot ask for its password. Sign with " +
          "the commands below, or with an unencrypted PKCS#8 copy " +
          "(openssl pkey -in key.pem -out plain.pem)."
      );
    }
    const legacy = text.match(/-----BEGIN (RSA|EC) PRIVATE KEY-----/);
    if (legacy) {
      throw new Refusal(
        "This is a " + legacy[1] + " private key in the older format; the browser reads " +
          "PKCS#8 (-----BEGIN PRIVATE KEY-----). Convert it: " +
          "openssl pkcs8 -topk8 -nocrypt -in key.pem -out key-pkcs8.pem."
      );
    }
    if (/-----BEGIN (RSA )?PUBLIC KEY-----/.test(text)) {
      throw new Refusal(
        "This file is a public key; choose the private key (-----BEGIN PRIVATE KEY-----)."
      );
    }
    const der = pemBody(text, "PRIVATE KEY");
    if (!der) {
      throw new Refusal(
        "This file is not a PEM private key; expected a file starting with " +
          "-----BEGIN PRIVATE KEY----- (PKCS#8: Ed25519, RSA or ECDSA P-256)."
      );
    }
    return der;
  }

  async function importPrivate(der) {
    for (const [algorithm, params] of ALGORITHMS) {
      try {
        const key = await crypto.subtle.importKey("pkcs8", der, params, true, ["sign"]);
        const jwk = await crypto.subtle.exportKey("jwk", key);
        return { algorithm, params, key, jwk };
      } catch (error) {
        // not this algorithm: try the next
      }
    }
    throw new Refusal(
      "This private key is not Ed25519, RSA or ECDSA P-256, the kinds this page signs with; " +
        "sign with the commands below."
    );
  }

  async function publicJwk(option, params) {
    const der = pemBody(option.dataset.publicKey || "", "PUBLIC KEY");
    const key = await crypto.subtle.importKey("spki", der, params, true, ["verify"]);
    return { key, jwk: await crypto.subtle.exportKey("jwk", key) };
  }

  function samePublicKey(algorithm, mine, theirs) {
    if (algorithm === "rsa") return mine.n === theirs.n && mine.e === theirs.e;
    if (algorithm === "ecdsa-p256") return mine.x === theirs.x && mine.y === theirs.y;
    return mine.x === theirs.x;
  }

  function modPow(base, exponent, modulus) {
    let result = 1n;
    base %= modulus;
    while (exponent > 0n) {
      if (exponent & 1n) result = (result * base) % modulus;
      base = (base * base) % modulus;
      exponent >>= 1n;
    }
    return result;
  }

  function mod(a, m) {
    const r = a % m;
    return r < 0n ? r + m : r;
  }

  function signRsa(jwk) {
    const n = b64urlToBigInt(jwk.n);
    const length = b64urlToBytes(jwk.n).length;
    const info = SHA256_INFO + digestHex;
    const padding = "ff".repeat(length - 3 - info.length / 2);
    const m = BigInt("0x0001" + padding + "00" + info);
    const [p, q] = [b64urlToBigInt(jwk.p), b64urlToBigInt(jwk.q)];
    const m1 = modPow(m, b64urlToBigInt(jwk.dp), p);
    const m2 = modPow(m, b64urlToBigInt(jwk.dq), q);
    const h = mod(b64urlToBigInt(jwk.qi) * (m1 - m2), p);
    const s = m2 + h * q;
    if (modPow(s, b64urlToBigInt(jwk.e), n) !== m) {
      throw new Refusal("The RSA signature did not check out against the key; nothing was sent.");
    }
    return hexToBytes(s.toString(16).padStart(length * 2, "0"));
  }

  async function sign(mine, theirs) {
    if (mine.algorithm === "ed25519") {
      const message = new TextEncoder().encode(digestHex);
      const signature = new Uint8Array(await crypto.subtle.sign("Ed25519", mine.key, message));
      if (!(await crypto.subtle.verify("Ed25519", theirs.key, signature, message))) {
        throw new Refusal("The Ed25519 signature did not verify; nothing was sent.");
      }
      return signature;
    }
    if (mine.algorithm === "ecdsa-p256") {
      const curve = window.nobleP256 && window.nobleP256.p256;
      if (!curve) throw new Refusal("The ECDSA signer did not load; reload the page.");
      const digest = hexToBytes(digestHex);
      const options = { prehash: false, format: "der" };
      const signature = curve.sign(digest, b64urlToBytes(mine.jwk.d), options);
      const point = new Uint8Array([4, ...b64urlToBytes(theirs.jwk.x), ...b64urlToBytes(theirs.jwk.y)]);
      if (!curve.verify(signature, digest, point, options)) {
        throw new Refusal("The ECDSA signature did not verify; nothing was sent.");
      }
      return signature;
    }
    return signRsa(mine.jwk);
  }

  async function signAndSend() {
    const option = select.selectedOptions[0];
    const file = keyFile.files[0];
    if (!option) throw new Refusal("Choose the signing key to sign with first.");
    if (!file) throw new Refusal("Choose the private key file of " + option.text + ".");
    if (file.size > 64 * 1024) {
      throw new Refusal("This file is " + file.size + " bytes; a PEM private key is a few KB.");
    }
    const mine = await importPrivate(privateDer(await file.text()));
    const wanted = option.dataset.algorithm;
    if (mine.algorithm !== wanted) {
      throw new Refusal(
        "This private key is " + mine.algorithm + " but signing key " + option.text +
          " is " + wanted + "; nothing was sent. Choose the matching pair."
      );
    }
    const theirs = await publicJwk(option, mine.params);
    if (!samePublicKey(mine.algorithm, mine.jwk, theirs.jwk)) {
      throw new Refusal(
        "This private key does not belong to signing key " + option.text +
          " (their public keys differ); nothing was sent. Choose that key's private key, or " +
          "the signing key this one belongs to."
      );
    }
    say("Signing…");
    const signature = await sign(mine, theirs);
    keyFile.value = "";
    if (sigFile) sigFile.value = "";
    pasted.value = bytesToHex(signature);
    say("Signed in the browser; attaching the signature…");
    form.requestSubmit();
  }

  button.addEventListener("click", function () {
    button.disabled = true;
    signAndSend()
      .catch(function (error) {
        const known = error instanceof Refusal;
        say(known ? error.message : "Signing failed: " + error.message, true);
      })
      .finally(function () {
        button.disabled = false;
      });
  });
  select.addEventListener("change", function () {
    say("");
  });
})();
