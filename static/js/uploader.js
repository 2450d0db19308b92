// The console's one hand-written script: copy buttons, and the Create Binary uploader.
//
// The uploader first makes sure of the binary the file goes into (Create Binary creates it
// with the file's size, or finds the unfinished upload of that size holding the target; a
// target held by anything else stops there, with a link, before a byte is hashed). A Web Worker
// (static/js/hash-worker.js) then reads the file once: the whole file's SHA-256 and each part's.
// Each part is declared and its bytes sent (a slice of the file: no copy on this thread) as
// soon as it is hashed, several at once, with retries; parts the server already holds are
// skipped. Once every part is saved and the hash known, the binary is marked hashable (hash
// declared in the same request) and the server's verification is followed to signable.
// The status area (#upload-status) shows one state: hashing, uploading, verifying, signable,
// or stopped with the server's words, the parts saved and a Resume button.
//
// It needs no inline script, so it runs under a Content-Security-Policy of script-src 'self'.
// hash-wasm's WebAssembly also needs 'wasm-unsafe-eval' (in the worker's policy); without it
// the worker hashes in plain JavaScript (slower, same result).
(function () {
  "use strict";

  const MiB = 1024 * 1024;
  const MAX_PARTS = 10000;
  const MAX_ATTEMPTS = 6;
  const PREDECLARED = 2; // parts declared ahead of a free slot

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
    }).catch(function () {
      throw new ApiError(0, { error: { message: "The network dropped (" + method + " " + path + " got no answer)." } });
    }).then(function (response) {
      if (response.status === 204) return null;
      return response.json().catch(function () { return null; }).then(function (data) {
        if (!response.ok) throw new ApiError(response.status, data);
        return data;
      });
    });
  }

  function sleep(ms) {
    return new Promise(function (resolve) { setTimeout(resolve, ms); });
  }

  // MiB everywhere: the pages say MiB too (binaries/console/binaries.py).
  function mib(n) {
    return (n / MiB).toFixed(1) + " MiB";
  }

  function seconds(s) {
    if (!isFinite(s) || s < 0) return "…";
    if (s < 60) return Math.ceil(s) + " s";
    return Math.floor(s / 60) + " min " + Math.ceil(s % 60) + " s";
  }

  function rate(bytes, since) {
    const elapsed = (performance.now() - since) / 1000;
    return elapsed > 0.05 ? bytes / elapsed : 0;
  }

  // The CLI's choice (peridio_cli/transfer/limits.py): whole MiB, at least 8 MiB, about 1/64 of
  // the file up to 64 MiB, and few enough parts (at most 10,000).
  function partSizeFor(size) {
    const share = Math.min(Math.ceil(size / 64), 64 * MiB);
    const needed = Math.max(8 * MiB, share, Math.ceil(size / MAX_PARTS));
    return Math.ceil(needed / MiB) * MiB;
  }

  // The CLI's 2 per core up to 8; a browser opens at most 6 connections to one server over
  // HTTP/1.1, and the declarations and the status need one.
  function slots() {
    return Math.max(2, Math.min(2 * (navigator.hardwareConcurrency || 1), 8, 5));
  }

  // A dropped network, a server error, a timeout or throttle, a part busy or superseded (409),
  // or an upload URL that expired while waiting: declaring the part again gives a fresh URL.
  // Not a binary that left the uploadable state, nor any other refusal (a part the server
  // received other bytes for, say: that is the server's word, shown as it is).
  function retryable(error) {
    if (!error.status || error.status >= 500) return true;
    if (error.status === 409) return error.code !== "invalid_state";
    return error.status === 408 || error.status === 429 || error.code === "url_expired";
  }

  // The refusal in the store's own words: this server's JSON error, or the part it kept with
  // the reason (422: "Part 7 was declared as sha256:… but the bytes that arrived are …"), or
  // S3's XML <Code> and <Message>.
  function uploadRefusal(request) {
    const text = request.responseText || "";
    let body = null;
    try { body = JSON.parse(text); } catch (e) { body = null; }
    if (body && body.error && body.error.message) return body.error;
    if (body && body.binary_part && body.binary_part.last_error) {
      return { message: body.binary_part.last_error, code: body.binary_part.state };
    }
    const message = /<Message>([^<]*)<\/Message>/.exec(text);
    const code = /<Code>([^<]*)<\/Code>/.exec(text);
    if (message) return { message: "The object store refused the part: " + message[1] + (code ? " (" + code[1] + ")" : "") + ".", code: code ? code[1] : undefined };
    return { message: "The upload URL answered " + request.status + "." };
  }

  function putBytes(url, blob, checksum, onProgress, requests) {
    return new Promise(function (resolve, reject) {
      const request = new XMLHttpRequest();
      requests.add(request);
      request.open("PUT", url);
      request.setRequestHeader("Content-Type", "application/octet-stream");
      request.setRequestHeader("x-amz-checksum-sha256", checksum);
      request.upload.onprogress = function (event) { onProgress(event.loaded); };
      request.onloadend = function () { requests.delete(request); };
      request.onload = function () {
        if (request.status >= 200 && request.status < 300) return resolve();
        reject(new ApiError(request.status, { error: uploadRefusal(request) }));
      };
      request.onerror = function () { reject(new ApiError(0, { error: { message: "The network dropped while sending a part." } })); };
      request.onabort = function () { reject(new ApiError(0, { error: { message: "The part's upload was cancelled." } })); };
      request.send(blob);
    });
  }

  function warnBeforeLeaving(event) {
    event.preventDefault();
    event.returnValue = ""; // Chromium shows its own words: the upload stops if the tab goes
  }

  // --- the status area: one truthful state, drawn from the job -----------------------------
  function StatusArea(root) {
    this.root = root;
    this.phase = root.querySelector(".upload-phase");
    this.hashLine = root.querySelector(".upload-hashing");
    this.sendLine = root.querySelector(".upload-sending");
    this.message = root.querySelector(".upload-message");
    this.link = root.querySelector(".upload-link");
    this.resume = root.querySelector(".upload-resume");
    this.timer = null;
  }

  StatusArea.prototype.line = function (line, label, done, total) {
    line.hidden = false;
    const bar = line.querySelector("progress");
    bar.max = total || 1;
    bar.value = Math.min(done, total || 1);
    bar.textContent = Math.floor((100 * done) / (total || 1)) + "%";
    line.querySelector("span").textContent = label;
  };

  // The link to the binary is replaced only when it changes: a link redrawn ten times a second
  // is one a person (or a test) can miss.
  StatusArea.prototype.show = function (phase, title, message, isError, link) {
    this.root.hidden = false;
    this.root.setAttribute("data-phase", phase);
    if (this.phase.textContent !== title) this.phase.textContent = title;
    if (this.message.textContent !== message) this.message.textContent = message || "";
    this.message.classList.toggle("error", !!isError);
    const current = this.link.firstElementChild;
    if (!link) this.link.textContent = "";
    else if (!current || current.href !== link.href) this.link.replaceChildren(link);
    this.link.hidden = !link;
    this.resume.hidden = phase !== "stopped";
  };

  StatusArea.prototype.reset = function () {
    this.hashLine.hidden = true;
    this.sendLine.hidden = true;
    this.show("idle", "", "");
    this.root.hidden = true;
  };

  // --- one upload: hash in the worker, send parts as they are hashed, complete, verify -----
  function Job(uploader, file, binary, expectedHash) {
    this.uploader = uploader;
    this.status = uploader.status;
    this.file = file;
    this.binary = binary;
    this.expectedHash = expectedHash || null; // a binary that already declared its hash
    this.partSize = partSizeFor(file.size);
    this.count = 0;
    this.hashes = {};
    this.hashed = 0;
    this.wholeHash = null;
    this.hashStart = 0;
    this.hashEnd = 0;
    this.hasher = null;
    this.worker = null;
    this.held = {};
    this.saved = new Set();
    this.skippedBytes = 0;
    this.sentBytes = 0;
    this.active = new Map(); // index -> bytes of it sent so far
    this.queue = [];
    this.requests = new Set();
    this.declarations = new Map(); // index -> the declaration made ahead of its upload
    this.sendStart = 0;
    this.note = "";
    this.stopped = null;
    this.finishing = false;
    this.phase = "hashing";
    this.verified = 0;
  }

  Job.prototype.start = async function () {
    window.addEventListener("beforeunload", warnBeforeLeaving);
    try {
      await this.listHeld();
    } catch (error) {
      return this.stop(error);
    }
    this.startHashing();
    this.draw();
  };

  Job.prototype.listHeld = async function () {
    const listed = (await api(this.uploader.base, "GET", "/binaries/" + this.binary.prn + "/parts")).binary_parts || [];
    const held = {};
    listed.forEach(function (p) { if (p.state === "valid") held[p.index] = p; });
    // An earlier upload of this binary chose its part size; keep it so its parts count.
    if (held[1] && held[1].size < this.file.size && !Object.keys(this.hashes).length) this.partSize = held[1].size;
    this.count = this.file.size ? Math.ceil(this.file.size / this.partSize) : 0;
    this.held = held;
  };

  Job.prototype.startHashing = function () {
    const self = this;
    this.hashStart = performance.now();
    this.hashed = 0;
    this.worker = new Worker(this.uploader.workerUrl);
    this.worker.onmessage = function (event) { self.onHashed(event.data); };
    this.worker.onerror = function (event) {
      event.preventDefault();
      self.worker = null;
      self.stop(new Error("The hashing worker failed: " + (event.message || "no reason given") + "."));
    };
    this.worker.postMessage({ file: this.file, partSize: this.partSize, hashWasmUrl: this.uploader.hashWasmUrl });
  };

  Job.prototype.onHashed = function (message) {
    if (message.type === "hasher") {
      this.hasher = message.name;
      this.uploader.zone.setAttribute("data-hasher", message.name);
    } else if (message.type === "progress") {
      this.hashed = message.bytes;
      this.draw();
    } else if (message.type === "part") {
      if (this.hashes[message.index]) return; // known from a pass before a resume
      this.hashes[message.index] = message;
      this.consider(message.index);
      this.pump();
    } else if (message.type === "done") {
      this.hashed = this.file.size;
      this.hashEnd = performance.now();
      this.wholeHash = "sha256:" + message.hash;
      this.worker.terminate();
      this.worker = null;
      if (this.expectedHash && this.expectedHash !== this.wholeHash) {
        return this.stop(new Error("This binary expects content with SHA-256 " + this.expectedHash +
          ", but the chosen file's is " + this.wholeHash + "; choose the file it was created for."), true);
      }
      this.pump();
      this.finishIfDone();
      this.draw(true);
    } else if (message.type === "error") {
      this.worker.terminate();
      this.worker = null;
      this.stop(new Error(message.message));
    }
  };

  // A hashed part the server already holds is saved; any other waits for a slot.
  Job.prototype.consider = function (index) {
    const part = this.hashes[index];
    const have = this.held[index];
    if (have && have.hash === "sha256:" + part.hash && have.size === part.size) {
      if (!this.saved.has(index)) this.skippedBytes += part.size;
      this.saved.add(index);
    } else if (!this.active.has(index) && this.queue.indexOf(index) < 0) {
      this.queue.push(index);
    }
  };

  Job.prototype.pump = function () {
    // A binary with a declared hash gets no byte before the file is known to be its content.
    if (this.stopped || (this.expectedHash && !this.wholeHash)) return;
    while (this.active.size < slots() && this.queue.length) {
      const index = this.queue.shift();
      if (this.saved.has(index)) continue;
      if (!this.sendStart) this.sendStart = performance.now();
      this.active.set(index, 0);
      this.send(index);
    }
    // Declare the next parts while these upload, so a freed slot starts sending at once
    // rather than after a round trip to the API.
    const self = this;
    this.queue.slice(0, PREDECLARED).forEach(function (index) {
      if (!self.declarations.has(index)) self.declarations.set(index, self.declare(index));
    });
  };

  Job.prototype.declare = function (index) {
    const part = this.hashes[index];
    const declared = api(this.uploader.base, "PUT", "/binaries/" + this.binary.prn + "/parts/" + index, {
      hash: part.hash, size: part.size, expected_binary_size: this.file.size,
    });
    declared.catch(function () {}); // a failed early declaration is made again by send()
    return declared;
  };

  Job.prototype.send = async function (index) {
    const part = this.hashes[index];
    const start = (index - 1) * this.partSize;
    const self = this;
    for (let attempt = 1; ; attempt++) {
      try {
        const early = attempt === 1 && this.declarations.get(index);
        this.declarations.delete(index);
        const declared = (await (early || this.declare(index))).binary_part;
        if (this.stopped) break; // stopped meanwhile: send no more bytes
        await putBytes(declared.presigned_upload_url, this.file.slice(start, start + part.size), part.checksum, function (loaded) {
          self.active.set(index, loaded);
          self.draw();
        }, this.requests);
        this.active.delete(index);
        this.saved.add(index);
        this.sentBytes += part.size;
        this.draw();
        this.pump();
        this.finishIfDone();
        return;
      } catch (error) {
        this.active.set(index, 0);
        if (this.stopped) break;
        if (attempt >= MAX_ATTEMPTS || !retryable(error)) {
          this.active.delete(index);
          return this.stop(error);
        }
        const wait = Math.min(8000, 250 * Math.pow(2, attempt));
        this.note = "part " + index + ": " + error.message + " Trying again in " + seconds(wait / 1000) + " (attempt " + (attempt + 1) + " of " + MAX_ATTEMPTS + ").";
        this.draw();
        await sleep(wait);
        if (this.stopped) break;
      }
    }
    this.active.delete(index);
    this.draw(true);
  };

  Job.prototype.finishIfDone = function () {
    if (this.stopped || this.finishing || !this.wholeHash || this.saved.size < this.count) return;
    this.finishing = true;
    this.complete();
  };

  Job.prototype.complete = async function () {
    this.phase = "verifying";
    window.removeEventListener("beforeunload", warnBeforeLeaving);
    this.draw(true);
    const path = "/binaries/" + this.binary.prn;
    try {
      this.binary = (await api(this.uploader.base, "PATCH", path, { hash: this.wholeHash, size: this.file.size, state: "hashable" })).binary;
    } catch (error) {
      return this.stop(error);
    }
    // Poll briskly (a verification is often over in a second or two), slower after a minute.
    const began = performance.now();
    let interval = 50;
    let failures = 0;
    while (!this.stopped) {
      const state = this.binary.state;
      if (state === "signable" || state === "signed") {
        this.phase = "signable";
        this.uploader.enable(true); // another file, another target
        return this.draw(true);
      }
      if (state === "uploadable" || state === "destroyed") {
        const why = this.binary.last_error || ("The binary became " + state + ".");
        return this.stop(new Error("The server's verification failed: " + why));
      }
      this.verified = this.binary.bytes_hashed || 0;
      this.draw();
      await sleep(interval);
      interval = Math.min(performance.now() - began < 60000 ? 250 : 1000, interval * 1.5);
      try {
        this.binary = (await api(this.uploader.base, "GET", path)).binary;
        failures = 0;
      } catch (error) {
        if (++failures >= 5 || !retryable(error)) return this.stop(error);
      }
    }
  };

  // The first reason wins: parts still on their way finish (or fail) without a word over it.
  Job.prototype.stop = function (error, final) {
    if (this.stopped) return;
    this.stopped = { message: error.message || String(error), final: !!final };
    this.queue = [];
    this.phase = "stopped";
    window.removeEventListener("beforeunload", warnBeforeLeaving);
    this.uploader.enable(true);
    this.draw(true);
  };

  Job.prototype.resume = async function () {
    if (!this.stopped || this.stopped.final) return;
    this.stopped = null;
    this.note = "";
    this.finishing = false;
    this.phase = "hashing";
    this.uploader.enable(false);
    window.addEventListener("beforeunload", warnBeforeLeaving);
    this.draw(true);
    try {
      await this.listHeld(); // the server's word on what it holds, not ours
    } catch (error) {
      return this.stop(error);
    }
    const self = this;
    this.saved = new Set();
    this.declarations = new Map();
    this.skippedBytes = 0;
    this.sentBytes = 0;
    this.sendStart = 0;
    Object.keys(this.hashes).forEach(function (k) { self.consider(Number(k)); });
    if (!this.wholeHash && !this.worker) this.startHashing();
    this.pump();
    this.finishIfDone();
    this.draw(true);
  };

  Job.prototype.draw = function (now) {
    const self = this;
    if (now) {
      clearTimeout(this.status.timer);
      this.status.timer = null;
      return this.render();
    }
    if (this.status.timer) return;
    this.status.timer = setTimeout(function () { self.status.timer = null; self.render(); }, 100);
  };

  Job.prototype.render = function () {
    const status = this.status;
    const size = this.file.size;
    const link = this.uploader.binaryLink(this.binary);
    if (this.wholeHash) {
      const took = (this.hashEnd - this.hashStart) / 1000;
      status.line(status.hashLine, "Hashed " + mib(size) + " in " + took.toFixed(1) + " s (" + mib(took > 0 ? size / took : 0) + "/s).", 1, 1);
    } else {
      const speed = rate(this.hashed, this.hashStart);
      status.line(status.hashLine, "Hashing: " + mib(this.hashed) + " of " + mib(size) + " · " + mib(speed) + "/s · " +
        seconds((size - this.hashed) / speed) + " left", this.hashed, size);
    }
    let moving = 0;
    this.active.forEach(function (loaded) { moving += loaded; });
    const sent = this.sentBytes + moving;
    const speed = this.sendStart ? rate(sent, this.sendStart) : 0;
    const left = size - this.skippedBytes - sent;
    let sending = this.saved.size + " of " + this.count + " parts saved · " + mib(this.skippedBytes + sent) + " of " + mib(size);
    if (this.phase !== "stopped" && this.saved.size < this.count) sending += " · " + mib(speed) + "/s · " + (speed ? seconds(left / speed) : "…") + " left";
    if (this.skippedBytes) sending += " (" + mib(this.skippedBytes) + " already on the server)";
    status.line(status.sendLine, "Uploading: " + sending, this.skippedBytes + sent, size);

    if (this.phase === "stopped") {
      let text = "Stopped: " + this.stopped.message + " ";
      if (this.count) text += this.saved.size + " of " + this.count + " parts saved. ";
      if (this.active.size) text += this.active.size + " part(s) already on their way may still arrive. ";
      if (!this.stopped.final) text += "Resume sends only the parts the server does not hold.";
      status.show("stopped", "Stopped", text.trim(), true, link);
      status.resume.hidden = !!this.stopped.final;
    } else if (this.phase === "signable") {
      const text = "Signable: the server verified " + mib(size) + " with SHA-256 " + this.wholeHash + ". Attach a signature on its page.";
      status.line(status.sendLine, "Uploading: " + this.count + " of " + this.count + " parts saved · " + mib(size), 1, 1);
      status.show("signable", "Signable", text, false, link);
      // On the binary's own page, show it as it now is: signable, with its signing form.
      if (this.uploader.zone.getAttribute("data-binary-prn")) window.location.reload();
    } else if (this.phase === "verifying") {
      const text = "The server is checking SHA-256 and size: " + mib(this.verified) + " of " + mib(size) + " verified.";
      status.show("verifying", "Verifying", text, false, link);
    } else {
      const phase = this.wholeHash ? "uploading" : "hashing";
      status.show(phase, this.wholeHash ? "Uploading" : "Hashing and uploading", this.note, false);
    }
  };

  // --- the form: fields, the binary to upload into, errors --------------------------------
  function Uploader(form, zone, statusRoot) {
    this.form = form;
    this.zone = zone;
    this.base = zone.getAttribute("data-api-base") || "/v1";
    this.workerUrl = zone.getAttribute("data-worker-url");
    this.hashWasmUrl = new URL(zone.getAttribute("data-hash-wasm-url"), window.location.href).href;
    this.input = zone.querySelector("input[type=file]");
    this.status = new StatusArea(statusRoot);
    this.job = null;
    const self = this;
    this.status.resume.addEventListener("click", function () { if (self.job) self.job.resume(); });
  }

  Uploader.prototype.binaryLink = function (binary) {
    if (!binary || !binary.prn) return null;
    const template = this.zone.getAttribute("data-binary-url-template");
    const a = document.createElement("a");
    a.href = template.replace("00000000-0000-0000-0000-000000000000", binary.prn.split(":").pop());
    a.textContent = "Open " + (binary.target || "the binary") + " (" + binary.prn + ")";
    a.className = "binary-link";
    return a;
  };

  Uploader.prototype.enable = function (enabled) {
    this.form.querySelectorAll("button, input, textarea").forEach(function (el) { el.disabled = !enabled; });
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

  // Before a byte is hashed: the binary this file goes into. On Create Binary, a new one (its
  // hash is declared once hashed), or the unfinished upload of this size that holds the target
  // (a reopened page resumes it); a target held by anything else stops here, with a link.
  // On a binary's page, that binary, if it takes content of this size.
  Uploader.prototype.binaryFor = async function (file, body) {
    const existing = this.zone.getAttribute("data-binary-prn");
    if (existing) {
      const binary = (await api(this.base, "GET", "/binaries/" + existing)).binary;
      if (binary.state !== "uploadable") {
        throw new Error("This binary is " + binary.state + "; only an uploadable binary takes content (reset it first).");
      }
      if (binary.size !== null && binary.size !== file.size) {
        throw new Error("This binary expects " + binary.size + " bytes (" + mib(binary.size) + "), but the chosen file has " + file.size + "; choose the file it was created for.");
      }
      return { binary: binary, expectedHash: binary.hash };
    }
    body.size = file.size;
    try {
      return { binary: (await api(this.base, "POST", "/binaries", body)).binary, expectedHash: null };
    } catch (error) {
      if (error.status !== 409 || error.code !== "target_taken") throw error;
      const query = "?artifact_version_prn=" + encodeURIComponent(body.artifact_version_prn) +
        "&target=" + encodeURIComponent(body.target) + "&order=desc&limit=100";
      const found = ((await api(this.base, "GET", "/binaries" + query)).binaries || []).filter(function (b) { return b.state !== "destroyed"; });
      const held = found[0];
      if (held && held.state === "uploadable" && (held.size === null || held.size === file.size)) {
        return { binary: held, expectedHash: held.hash };
      }
      error.binary = held;
      throw error;
    }
  };

  Uploader.prototype.run = async function () {
    this.clearFieldErrors();
    const file = this.input.files[0];
    if (!file) return;
    if (this.job && this.job.phase !== "stopped" && this.job.phase !== "signable") return;
    this.status.reset();
    let found;
    try {
      const body = this.fields(); // before disabling the form: FormData skips disabled fields
      this.enable(false);
      this.status.show("checking", "Checking the target", "Checking that the target is free…", false);
      found = await this.binaryFor(file, body);
    } catch (error) {
      this.enable(true); // first: a disabled field cannot take the focus
      this.job = null;
      this.status.show("refused", "Not started", error.message || String(error), true, this.binaryLink(error.binary));
      if (error instanceof ApiError) this.fieldError(error.field, error.message);
      return;
    }
    this.job = new Job(this, file, found.binary, found.expectedHash);
    this.job.start();
  };

  function mount() {
    const zone = document.getElementById("binary-drop-zone");
    const form = zone && zone.closest("form");
    const statusRoot = document.getElementById("upload-status");
    if (!form || !statusRoot) return;
    const uploader = new Uploader(form, zone, statusRoot);
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
