// The console's one hand-written script: copy buttons, and the Create Binary uploader.
//
// The uploader hashes the chosen file in the browser (streaming, a slice at a time, with
// hash-wasm's incremental SHA-256), creates the binary through the JSON API (or finds the
// uploadable binary this file already started), uploads its parts 4 at a time to their upload
// URLs with each part's SHA-256 from WebCrypto, retries failed parts with backoff, skips parts
// the server already holds (so a reopened page resumes), then marks the binary hashable and
// hands over to the binary page's live progress. It never holds more than the parts in flight.
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

  Uploader.prototype.fail = function (message) {
    this.text.textContent = message;
    this.text.classList.add("error");
    this.form.querySelectorAll("button, input, textarea").forEach(function (el) { el.disabled = false; });
  };

  Uploader.prototype.clearFieldErrors = function () {
    this.form.querySelectorAll(".js-field-error").forEach(function (el) { el.remove(); });
    this.text.classList.remove("error");
  };

  Uploader.prototype.fieldError = function (field, message) {
    const input = field && this.form.querySelector("[name=" + field + "]");
    if (!input) return false;
    const note = document.createElement("p");
    note.className = "error js-field-error";
    note.id = "js-error-" + field;
    note.setAttribute("role", "alert");
    note.textContent = message;
    input.setAttribute("aria-describedby", note.id);
    input.insertAdjacentElement("afterend", note);
    input.focus();
    return true;
  };

  Uploader.prototype.hashFile = async function (file) {
    const hasher = await window.hashwasm.createSHA256();
    hasher.init();
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

  // Create the binary, or find the uploadable one this same file already started.
  Uploader.prototype.binaryFor = async function (body) {
    const existing = this.zone.getAttribute("data-binary-prn");
    if (existing) return (await api(this.base, "GET", "/binaries/" + existing)).binary;
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
          if (attempt >= MAX_ATTEMPTS || (error.status && error.status < 500 && error.status !== 408 && error.status !== 409 && error.status !== 429)) throw error;
          self.text.textContent = "Part " + index + " failed (" + error.message + "); retrying…";
          await sleep(Math.min(16000, 500 * Math.pow(2, attempt)));
        }
      }
    }

    let next = 1;
    async function worker() {
      while (next <= count) {
        const index = next++;
        await one(index);
      }
    }
    const workers = [];
    for (let i = 0; i < Math.min(CONCURRENCY, count); i++) workers.push(worker());
    await Promise.all(workers);
    return { count: count, skipped: Object.keys(held).length };
  };

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
    this.form.querySelectorAll("button, input, textarea").forEach(function (el) { el.disabled = true; });
    try {
      const body = this.fields();
      body.hash = "sha256:" + (await this.hashFile(file));
      body.size = file.size;
      const binary = await this.binaryFor(body);
      this.zone.setAttribute("data-binary-prn", binary.prn);
      if (file.size > 0) await this.uploadParts(binary, file);
      this.progress("Upload complete; asking the server to verify it…", file.size, file.size);
      await api(this.base, "PATCH", "/binaries/" + binary.prn, { state: "hashable" });
      const template = this.zone.getAttribute("data-binary-url-template");
      window.location.assign(template.replace("00000000-0000-0000-0000-000000000000", binary.prn.split(":").pop()));
    } catch (error) {
      if (!(error instanceof ApiError) || !this.fieldError(error.field, error.message)) {
        this.fail(error.message || String(error));
      } else {
        this.fail("Fix the field marked above and try again.");
      }
    }
    return true;
  };

  function mount() {
    const form = document.getElementById("create-binary");
    const zone = document.getElementById("binary-drop-zone");
    if (!form || !zone) return;
    const uploader = new Uploader(form, zone);
    form.addEventListener("submit", function (event) {
      if (!uploader.input.files.length) return; // no file: the form creates the record only
      event.preventDefault();
      uploader.run();
    });
    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function (event) { event.preventDefault(); zone.classList.add("dragging"); });
    });
    ["dragleave", "drop"].forEach(function (name) {
      zone.addEventListener(name, function () { zone.classList.remove("dragging"); });
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
