// The console's one hand-written script: copy buttons, and the Create Binary uploader.
//
// The uploader hashes the chosen file in the browser (streaming, a slice at a time, with
// hash-wasm's incremental SHA-256), creates the binary through the JSON API (or finds the
// uploadable binary this file already started), uploads its parts 4 at a time to their upload
// URLs with each part's SHA-256 from WebCrypto, retries failed parts with backoff, skips parts
// the server already holds (so a reopened page resumes), then marks the binary hashable and
// hands over to the binary page's live progress. It never holds more than the parts in flight.
// On an uploadable binary's page the same uploader (data-binary-prn on the drop zone) uploads
// the content of the binary that already exists instead of creating one.
//
// It needs no inline script, so it runs under a Content-Security-Policy of script-src 'self'.
// hash-wasm's WebAssembly also needs 'wasm-unsafe-eval' there; without it the uploader hashes
// with the plain-JavaScript SHA-256 below (slower, same result).
(function () {
  "use strict";

  const MiB = 1024 * 1024;
  const HASH_SLICE = 8 * MiB;
  const CONCURRENCY = 4;
  const MAX_ATTEMPTS = 6;

  function csrfToken() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (e) {
      return "";
    }
  }

  // --- copy buttons -------------------------------------------------------------------------
  document.addEventListener("click", function (event) {
    const button = event.target.closest("[data-copy-target]");
    if (!button) return;
    const source = document.querySelector(button.getAttribute("data-copy-target"));
    if (!source) return;
    const text = "value" in source && source.value !== undefined ? source.value : source.textContent;
    const done = function () {
      const label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { selectAndCopy(source); done(); });
    } else {
      selectAndCopy(source);
      done();
    }
  });

  function selectAndCopy(element) {
    if (element.select) {
      element.select();
    } else {
      const range = document.createRange();
      range.selectNodeContents(element);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
    }
    document.execCommand("copy");
  }

  // --- API ----------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, body) {
      const error = (body && body.error) || {};
      super(error.message || "The server answered " + status + ".");
      this.status = status;
      this.code = error.code;
      this.field = error.field;
    }
  }

  function api(base, method, path, body) {
    return fetch(base + path, {
      method: method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: body === undefined ? undefined : JSON.stringify(body),
    }).then(function (response) {
      if (response.status === 204) return null;
      return response.json().catch(function () { return null; }).then(function (data) {
        if (!response.ok) throw new ApiError(response.status, data);
        return data;
      });
    });
  }

  function hex(buffer) {
    return Array.from(new Uint8Array(buffer), function (b) { return b.toString(16).padStart(2, "0"); }).join("");
  }

  function base64(buffer) {
    let text = "";
    new Uint8Array(buffer).forEach(function (b) { text += String.fromCharCode(b); });
    return btoa(text);
  }

  function sleep(ms) {
    return new Promise(function (resolve) { setTimeout(resolve, ms); });
  }

  function formatBytes(n) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return n.toFixed(i ? 1 : 0) + " " + units[i];
  }

  function formatSeconds(s) {
    if (!isFinite(s)) return "…";
    if (s < 60) return Math.ceil(s) + " s";
    return Math.floor(s / 60) + " min " + Math.ceil(s % 60) + " s";
  }

  // --- SHA-256 without WebAssembly ----------------------------------------------------------
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

  // The incremental interface of hash-wasm's hasher (update, digest), in plain JavaScript.
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

  async function createHasher() {
    try {
      const hasher = await window.hashwasm.createSHA256();
      hasher.init();
      return hasher;
    } catch (e) {
      return new PlainSHA256(); // WebAssembly refused by the page's policy, or hash-wasm missing
    }
  }

  // --- the uploader -------------------------------------------------------------------------
  function Uploader(form, zone) {
    this.form = form;
    this.zone = zone;
    this.base = zone.getAttribute("data-api-base") || "/v1";
    this.input = zone.querySelector("input[type=file]");
    this.bar = document.getElementById("upload-progress-bar");
    this.text = document.getElementById("upload-progress-text");
    this.file = null;
  }

  Uploader.prototype.progress = function (label, done, total) {
    this.bar.hidden = false;
    this.bar.max = total || 1;
    this.bar.value = done;
    this.bar.textContent = Math.floor((100 * done) / (total || 1)) + "%";
    this.text.textContent = label;
  };

  Uploader.prototype.enable = function (enabled) {
    this.form.querySelectorAll("button, input, textarea").forEach(function (el) { el.disabled = !enabled; });
  };

  Uploader.prototype.fail = function (message) {
    this.text.textContent = message;
    this.text.classList.add("error");
  };

  Uploader.prototype.clearFieldErrors = function () {
    this.form.querySelectorAll(".js-field-error").forEach(function (note) {
      const input = note.previousElementSibling;
      const described = (input.getAttribute("aria-describedby") || "").replace(note.id, "").trim();
      if (described) input.setAttribute("aria-describedby", described);
      else input.removeAttribute("aria-describedby");
      input.removeAttribute("aria-invalid");
      note.remove();
    });
    this.text.classList.remove("error");
  };

  // The server's (or our) refusal next to the field it names; false when no field matches.
  Uploader.prototype.fieldError = function (field, message) {
    const input = field && this.form.querySelector("[name=" + field + "]");
    if (!input) return false;
    const note = document.createElement("p");
    note.className = "error js-field-error";
    note.id = "js-error-" + field;
    note.setAttribute("role", "alert");
    note.textContent = message;
    const described = input.getAttribute("aria-describedby");
    input.setAttribute("aria-describedby", (described ? described + " " : "") + note.id);
    input.setAttribute("aria-invalid", "true");
    input.insertAdjacentElement("afterend", note);
    input.focus();
    return true;
  };

  Uploader.prototype.hashFile = async function (file) {
    const hasher = await createHasher();
    this.zone.setAttribute("data-hasher", hasher instanceof PlainSHA256 ? "javascript" : "hash-wasm");
    for (let offset = 0; offset < file.size; offset += HASH_SLICE) {
      const slice = await file.slice(offset, Math.min(file.size, offset + HASH_SLICE)).arrayBuffer();
      hasher.update(new Uint8Array(slice));
      this.progress("Hashing locally: " + formatBytes(offset + slice.byteLength) + " of " + formatBytes(file.size), offset + slice.byteLength, file.size);
    }
    return hasher.digest("hex");
  };

  Uploader.prototype.fields = function () {
    const data = new FormData(this.form);
    const body = {
      artifact_version_prn: this.zone.getAttribute("data-version-prn"),
      target: (data.get("target") || "").trim(),
    };
    const description = (data.get("description") || "").trim();
    if (description) body.description = description;
    const metadata = (data.get("custom_metadata") || "").trim();
    if (metadata) {
      try {
        body.custom_metadata = JSON.parse(metadata);
      } catch (e) {
        throw new ApiError(400, { error: { message: "custom_metadata must be a JSON object: " + e.message, field: "custom_metadata" } });
      }
    }
    return body;
  };

  // Create the binary, or find the uploadable one this same file already started, or (on a
  // binary's page) take that binary, declaring the file's hash and size if it has none yet.
  Uploader.prototype.binaryFor = async function (body) {
    const existing = this.zone.getAttribute("data-binary-prn");
    if (existing) {
      const binary = (await api(this.base, "GET", "/binaries/" + existing)).binary;
      if (binary.state !== "uploadable") {
        throw new Error("This binary is " + binary.state + "; only an uploadable binary takes content (reset it first).");
      }
      if (binary.hash && binary.hash !== body.hash) {
        throw new Error("This binary expects content with SHA-256 " + binary.hash + ", but the chosen file's is " + body.hash + "; choose the file it was created for.");
      }
      if (binary.size !== null && binary.size !== body.size) {
        throw new Error("This binary expects " + binary.size + " bytes, but the chosen file has " + body.size + "; choose the file it was created for.");
      }
      if (binary.hash && binary.size !== null) return binary;
      return (await api(this.base, "PATCH", "/binaries/" + binary.prn, { hash: body.hash, size: body.size })).binary;
    }
    try {
      return (await api(this.base, "POST", "/binaries", body)).binary;
    } catch (error) {
      if (error.status !== 409 || error.field !== "target") throw error;
      const query = "?artifact_version_prn=" + encodeURIComponent(body.artifact_version_prn) +
        "&target=" + encodeURIComponent(body.target) + "&state=uploadable";
      const found = (await api(this.base, "GET", "/binaries" + query)).binaries || [];
      const same = found.find(function (b) { return b.hash === body.hash && b.size === body.size; });
      if (!same) throw error;
      return same;
    }
  };

  Uploader.prototype.partSize = function (size) {
    // Parts of 8 MiB, larger only when a file would need more than 10,000 of them.
    return Math.max(8 * MiB, Math.ceil(size / 10000 / MiB) * MiB);
  };

  Uploader.prototype.uploadParts = async function (binary, file) {
    const partSize = this.partSize(file.size);
    const count = Math.ceil(file.size / partSize);
    const listed = (await api(this.base, "GET", "/binaries/" + binary.prn + "/parts")).binary_parts || [];
    const held = {};
    listed.forEach(function (p) { if (p.state === "valid") held[p.index] = p; });
    let sent = 0;
    let skipped = 0;
    let failed = false;
    const started = performance.now();
    const inFlight = {};
    const self = this;

    function report() {
      let moving = 0;
      Object.keys(inFlight).forEach(function (k) { moving += inFlight[k]; });
      const done = Math.min(file.size, sent + moving);
      const elapsed = (performance.now() - started) / 1000;
      const speed = elapsed > 0 ? (done - skipped) / elapsed : 0;
      const left = speed > 0 ? (file.size - done) / speed : Infinity;
      self.progress("Uploading: " + formatBytes(done) + " of " + formatBytes(file.size) +
        " · " + formatBytes(speed) + "/s · " + formatSeconds(left) + " left", done, file.size);
    }

    async function one(index) {
      const start = (index - 1) * partSize;
      const blob = file.slice(start, Math.min(file.size, start + partSize));
      const bytes = await blob.arrayBuffer();
      const digest = await crypto.subtle.digest("SHA-256", bytes);
      const hash = hex(digest);
      const have = held[index];
      if (have && have.hash === "sha256:" + hash && have.size === bytes.byteLength) {
        sent += bytes.byteLength;
        skipped += bytes.byteLength;
        report();
        return;
      }
      for (let attempt = 1; ; attempt++) {
        try {
          const declared = (await api(self.base, "PUT", "/binaries/" + binary.prn + "/parts/" + index, {
            hash: hash, size: bytes.byteLength, expected_binary_size: file.size,
          })).binary_part;
          await putBytes(declared.presigned_upload_url, bytes, base64(digest), function (loaded) {
            inFlight[index] = loaded;
            report();
          });
          delete inFlight[index];
          sent += bytes.byteLength;
          report();
          return;
        } catch (error) {
          delete inFlight[index];
          if (attempt >= MAX_ATTEMPTS || failed || !retryable(error)) throw error;
          self.text.textContent = "Part " + index + " failed (" + error.message + "); retrying…";
          await sleep(Math.min(16000, 500 * Math.pow(2, attempt)));
        }
      }
    }

    let next = 1;
    async function worker() {
      while (next <= count && !failed) {
        const index = next++;
        try {
          await one(index);
        } catch (error) {
          failed = true; // the other workers finish their part and stop
          throw error;
        }
      }
    }
    const workers = [];
    for (let i = 0; i < Math.min(CONCURRENCY, count); i++) workers.push(worker());
    await Promise.all(workers);
    return { count: count, skippedBytes: skipped };
  };

  // A dropped network, a server error, a timeout or throttle, a part busy or superseded (409),
  // or an upload URL that expired while waiting: declaring the part again gives a fresh URL.
  // Not a binary that left the uploadable state, nor any other refusal.
  function retryable(error) {
    if (!error.status || error.status >= 500) return true;
    if (error.status === 409) return error.code !== "invalid_state";
    return error.status === 408 || error.status === 429 || error.code === "url_expired";
  }

  function putBytes(url, bytes, checksum, onProgress) {
    return new Promise(function (resolve, reject) {
      const request = new XMLHttpRequest();
      request.open("PUT", url);
      request.setRequestHeader("Content-Type", "application/octet-stream");
      request.setRequestHeader("x-amz-checksum-sha256", checksum);
      request.upload.onprogress = function (event) { onProgress(event.loaded); };
      request.onload = function () {
        if (request.status >= 200 && request.status < 300) return resolve();
        let body = null;
        try { body = JSON.parse(request.responseText); } catch (e) { body = null; }
        reject(new ApiError(request.status, body || { error: { message: "The upload URL answered " + request.status + "." } }));
      };
      request.onerror = function () { reject(new ApiError(0, { error: { message: "The network dropped." } })); };
      request.send(bytes);
    });
  }

  Uploader.prototype.run = async function () {
    this.clearFieldErrors();
    const file = this.input.files[0];
    if (!file) return false;
    try {
      const body = this.fields(); // before disabling the form: FormData skips disabled fields
      this.enable(false);
      body.hash = "sha256:" + (await this.hashFile(file));
      body.size = file.size;
      const binary = await this.binaryFor(body);
      if (file.size > 0) await this.uploadParts(binary, file);
      this.progress("Upload complete; asking the server to verify it…", file.size, file.size);
      await api(this.base, "PATCH", "/binaries/" + binary.prn, { state: "hashable" });
      const template = this.zone.getAttribute("data-binary-url-template");
      window.location.assign(template.replace("00000000-0000-0000-0000-000000000000", binary.prn.split(":").pop()));
    } catch (error) {
      this.enable(true); // first: a disabled field cannot take the focus
      if (error instanceof ApiError && this.fieldError(error.field, error.message)) {
        this.fail("Fix the field marked above and try again.");
      } else {
        this.fail(error.message || String(error));
      }
    }
    return true;
  };

  function mount() {
    const zone = document.getElementById("binary-drop-zone");
    const form = zone && zone.closest("form");
    if (!form) return;
    const uploader = new Uploader(form, zone);
    form.addEventListener("submit", function (event) {
      if (!uploader.input.files.length) return; // no file: the form creates the record only
      event.preventDefault();
      uploader.run();
    });
    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function (event) { event.preventDefault(); zone.classList.add("dragover"); });
    });
    ["dragleave", "drop"].forEach(function (name) {
      zone.addEventListener(name, function () { zone.classList.remove("dragover"); });
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      if (event.dataTransfer.files.length) uploader.input.files = event.dataTransfer.files;
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", mount);
  } else {
    mount();
  }
})();
