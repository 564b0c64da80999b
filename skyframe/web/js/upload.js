// Resumable chunked uploads: init -> PUT chunks with Content-Range -> complete.
//
// Each file is remembered in localStorage by its fingerprint (name + size + lastModified) together with
// its uploadId, so after a network drop or a page reload the same file resumes from the server's
// `receivedBytes` instead of starting again.

import { ApiError, errorFromBody, parseJson, uploadsApi } from './api.js';

const STORE_KEY = 'skyframe.pendingUploads';
const MIN_CHUNK = 64 * 1024;
const MAX_RETRY_DELAY_MS = 30_000;
const SPEED_WINDOW_MS = 5_000;

export function fingerprint(file) {
  return `${file.name}|${file.size}|${file.lastModified}`;
}

/** Unfinished uploads of this browser, by fingerprint: {uploadId, name, size, lastModified, chunkSize, createdAt}. */
export const pendingStore = {
  all() {
    try {
      const data = JSON.parse(localStorage.getItem(STORE_KEY) || '{}');
      return data && typeof data === 'object' ? data : {};
    } catch {
      return {};
    }
  },
  get(fp) {
    return this.all()[fp] ?? null;
  },
  set(fp, entry) {
    const data = this.all();
    data[fp] = entry;
    this.save(data);
  },
  remove(fp) {
    const data = this.all();
    if (fp in data) {
      delete data[fp];
      this.save(data);
    }
  },
  save(data) {
    try {
      localStorage.setItem(STORE_KEY, JSON.stringify(data));
    } catch {
      // Storage full or disabled: uploads still work, they just cannot resume after a reload.
    }
  },
};

/**
 * Client chunk size override, for testing and slow links: `?chunk=262144` or
 * `localStorage.skyframeChunkSize = 262144`. Returns null when unset (use the server's suggestion).
 */
export function chunkSizeOverride() {
  const fromQuery = new URLSearchParams(location.search).get('chunk');
  let fromStorage = null;
  try {
    fromStorage = localStorage.getItem('skyframeChunkSize');
  } catch {
    // ignore
  }
  const value = parseInt(fromQuery ?? fromStorage ?? '', 10);
  return Number.isFinite(value) && value > 0 ? Math.max(MIN_CHUNK, value) : null;
}

const TYPES_BY_EXTENSION = {
  mp4: 'video/mp4', m4v: 'video/mp4', lrv: 'video/mp4', mov: 'video/quicktime', mkv: 'video/x-matroska',
  webm: 'video/webm', avi: 'video/x-msvideo', mts: 'video/mp2t', m2ts: 'video/mp2t', ts: 'video/mp2t',
};

function contentTypeOf(file) {
  if (file.type) return file.type;
  const ext = file.name.split('.').pop()?.toLowerCase() ?? '';
  return TYPES_BY_EXTENSION[ext] ?? 'application/octet-stream';
}

class Aborted extends Error {
  constructor() {
    super('aborted');
    this.name = 'AbortError';
  }
}

/**
 * One file's upload. Emits `change` (state, progress, speed) events; `state` is one of
 * queued | checking | uploading | paused | retrying | processing | done | error | canceled.
 */
export class UploadTask extends EventTarget {
  constructor(file) {
    super();
    this.file = file;
    this.fp = fingerprint(file);
    this.state = 'queued';
    this.uploadId = null;
    this.offset = 0; // bytes the server has confirmed
    this.sent = 0; // bytes confirmed + in flight (for the progress bar)
    this.resumedFrom = null;
    this.chunkSize = null;
    this.speed = 0;
    this.message = '';
    this.error = null;
    this.upload = null;
    this.retries = 0;
    this.run = 0; // bumped on pause/cancel so a stale loop stops
    this.xhr = null;
    this.samples = [];
    this.wake = null;
  }

  get size() {
    return this.file.size;
  }

  get percent() {
    return this.size ? (this.sent / this.size) * 100 : this.state === 'done' ? 100 : 0;
  }

  get eta() {
    return this.speed > 0 ? (this.size - this.sent) / this.speed : Infinity;
  }

  get active() {
    return ['checking', 'uploading', 'retrying', 'processing'].includes(this.state);
  }

  get finished() {
    return ['done', 'error', 'canceled'].includes(this.state);
  }

  emit() {
    this.dispatchEvent(new Event('change'));
  }

  setState(state, message = '') {
    this.state = state;
    this.message = message;
    this.emit();
  }

  /** Start or resume. Safe to call again after pause(). */
  async start() {
    if (this.active || this.finished) return;
    const run = ++this.run;
    this.samples = [];
    this.speed = 0;
    try {
      this.setState('checking', this.uploadId ? 'Checking what the server has…' : 'Starting…');
      const alreadyDone = await this.retrying(run, () => this.openSession());
      if (alreadyDone) return this.finish(alreadyDone);
      for (;;) {
        await this.sendChunks(run);
        this.setState('processing', 'Checking the video…');
        try {
          return this.finish(await this.retrying(run, () => uploadsApi.complete(this.uploadId)));
        } catch (error) {
          // 409: the server is missing bytes after all (e.g. a chunk was lost); send the rest.
          if (!(error instanceof ApiError) || error.status !== 409) throw error;
          this.offset = this.sent = await this.retrying(run, () => this.serverOffset());
          if (this.offset >= this.size) throw error;
        }
      }
    } catch (error) {
      if (error.name === 'AbortError' || run !== this.run) return;
      this.fail(error);
    }
  }

  pause() {
    if (!this.active && this.state !== 'queued') return;
    this.run += 1;
    this.xhr?.abort();
    this.wake?.();
    this.sent = this.offset;
    this.speed = 0;
    this.setState('paused', 'Paused');
  }

  /** Stop for good and drop the partial upload on the server. */
  async cancel() {
    this.run += 1;
    this.xhr?.abort();
    this.wake?.();
    const id = this.uploadId;
    pendingStore.remove(this.fp);
    this.setState('canceled', 'Canceled');
    if (id) await uploadsApi.remove(id).catch(() => {});
  }

  /** Skip a pending retry delay (e.g. when the browser comes back online). */
  retryNow() {
    this.wake?.();
  }

  async openSession() {
    const stored = pendingStore.get(this.fp);
    const id = this.uploadId ?? stored?.uploadId;
    if (id) {
      try {
        const upload = await uploadsApi.get(id);
        if (upload.status === 'ready') return upload;
        if (upload.status === 'pending' && upload.size === this.size) {
          this.uploadId = id;
          this.chunkSize = chunkSizeOverride() ?? upload.chunkSize ?? stored?.chunkSize ?? 8 * 1024 * 1024;
          this.offset = this.sent = upload.receivedBytes ?? 0;
          if (this.resumedFrom === null && this.offset > 0) this.resumedFrom = this.offset;
          return null;
        }
      } catch (error) {
        if (!(error instanceof ApiError) || error.retryable) throw error;
        // 404 or similar: the server forgot it; start a new upload below.
      }
      pendingStore.remove(this.fp);
      this.uploadId = null;
    }
    const upload = await uploadsApi.init({
      filename: this.file.name,
      size: this.size,
      contentType: contentTypeOf(this.file),
    });
    this.uploadId = upload.uploadId;
    this.chunkSize = chunkSizeOverride() ?? upload.chunkSize ?? 8 * 1024 * 1024;
    this.offset = this.sent = upload.receivedBytes ?? 0;
    pendingStore.set(this.fp, {
      uploadId: upload.uploadId,
      name: this.file.name,
      size: this.size,
      lastModified: this.file.lastModified,
      chunkSize: upload.chunkSize,
      createdAt: Date.now(),
    });
    return null;
  }

  async sendChunks(run) {
    while (this.offset < this.size) {
      if (run !== this.run) throw new Aborted();
      const start = this.offset;
      const end = Math.min(this.size, start + this.chunkSize);
      if (this.state !== 'uploading') this.setState('uploading');
      try {
        const upload = await this.putChunk(start, end);
        this.offset = Math.max(start, upload?.receivedBytes ?? end);
        this.sent = this.offset;
        this.retries = 0;
        this.emit();
      } catch (error) {
        if (error.name === 'AbortError' || run !== this.run) throw new Aborted();
        if (error instanceof ApiError && error.code === 'range_gap') {
          // The server holds a different amount than we thought: continue from its offset.
          this.offset = this.sent = Number(error.details.receivedBytes ?? (await this.serverOffset()));
          continue;
        }
        if (!(error instanceof ApiError) || !error.retryable) throw error;
        await this.backoff(run, error);
        this.offset = this.sent = await this.retrying(run, () => this.serverOffset());
      }
    }
  }

  async serverOffset() {
    const upload = await uploadsApi.get(this.uploadId);
    return upload.receivedBytes ?? 0;
  }

  /** Run `fn`, waiting and repeating while it fails with a network / 5xx error. */
  async retrying(run, fn) {
    for (;;) {
      if (run !== this.run) throw new Aborted();
      try {
        return await fn();
      } catch (error) {
        if (run !== this.run) throw new Aborted();
        if (!(error instanceof ApiError) || !error.retryable) throw error;
        await this.backoff(run, error);
      }
    }
  }

  async backoff(run, error) {
    this.retries += 1;
    const delay = Math.min(MAX_RETRY_DELAY_MS, 1000 * 2 ** Math.min(this.retries - 1, 5));
    const offline = typeof navigator !== 'undefined' && navigator.onLine === false;
    const why = offline || error.status === 0 ? 'Connection lost' : 'Server unavailable';
    this.speed = 0;
    this.sent = this.offset;
    this.setState('retrying', `${why}; retrying in ${Math.round(delay / 1000)} s…`);
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, delay);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.wake = null;
    if (run !== this.run) throw new Aborted();
  }

  putChunk(start, end) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      this.xhr = xhr;
      xhr.open('PUT', uploadsApi.fileUrl(this.uploadId));
      xhr.setRequestHeader('Content-Range', `bytes ${start}-${end - 1}/${this.size}`);
      xhr.setRequestHeader('Content-Type', 'application/octet-stream');
      xhr.setRequestHeader('Accept', 'application/json');
      xhr.upload.onprogress = (event) => this.progress(start + event.loaded);
      xhr.onload = () => {
        this.xhr = null;
        const body = parseJson(xhr.responseText);
        if (xhr.status >= 200 && xhr.status < 300) {
          this.progress(end);
          resolve(body);
        } else {
          reject(errorFromBody(xhr.status, body));
        }
      };
      xhr.onerror = () => {
        this.xhr = null;
        reject(new ApiError(0, 'network', 'The server could not be reached.'));
      };
      xhr.ontimeout = xhr.onerror;
      xhr.onabort = () => {
        this.xhr = null;
        reject(new Aborted());
      };
      xhr.send(this.file.slice(start, end));
    });
  }

  progress(bytes) {
    const now = performance.now();
    this.sent = Math.min(this.size, Math.max(this.sent, bytes));
    this.samples.push([now, this.sent]);
    while (this.samples.length > 2 && now - this.samples[0][0] > SPEED_WINDOW_MS) this.samples.shift();
    const [t0, b0] = this.samples[0];
    if (now - t0 > 250) this.speed = ((this.sent - b0) * 1000) / (now - t0);
    this.emit();
  }

  finish(upload) {
    pendingStore.remove(this.fp);
    this.upload = upload;
    if (upload?.status === 'failed') {
      this.fail(new ApiError(422, 'failed', upload.error || 'The server could not process this file.'));
      return;
    }
    this.offset = this.sent = this.size;
    this.speed = 0;
    this.setState('done', 'Uploaded');
  }

  fail(error) {
    this.error = error;
    this.speed = 0;
    // A refusal (type, size, not a video) is final: forget the upload so the file starts fresh next time.
    if (error instanceof ApiError && error.status >= 400 && error.status < 500) pendingStore.remove(this.fp);
    this.setState('error', error.message || 'Upload failed.');
  }
}

/** Runs upload tasks a few at a time. */
export class UploadQueue extends EventTarget {
  constructor({ concurrency = 2 } = {}) {
    super();
    this.concurrency = concurrency;
    this.tasks = [];
    window.addEventListener('online', () => this.tasks.forEach((task) => task.retryNow()));
  }

  /** Add files; a file already in the queue (same fingerprint, not finished) is resumed instead. */
  add(files) {
    const added = [];
    for (const file of files) {
      const fp = fingerprint(file);
      const existing = this.tasks.find((task) => task.fp === fp && !task.finished);
      if (existing) {
        existing.file = file;
        if (existing.state === 'paused') this.resume(existing);
        continue;
      }
      const task = new UploadTask(file);
      task.addEventListener('change', () => this.onChange(task));
      this.tasks.push(task);
      added.push(task);
      this.dispatchEvent(new CustomEvent('added', { detail: task }));
    }
    this.pump();
    return added;
  }

  resume(task) {
    if (task.state !== 'paused') return;
    task.setState('queued', 'Waiting…');
    this.pump();
  }

  remove(task) {
    this.tasks = this.tasks.filter((t) => t !== task);
    this.dispatchEvent(new CustomEvent('removed', { detail: task }));
  }

  onChange(task) {
    if (task.finished) {
      if (task.state === 'done') this.dispatchEvent(new CustomEvent('uploaded', { detail: task }));
      this.pump();
    } else if (task.state === 'paused') {
      this.pump();
    }
  }

  pump() {
    let running = this.tasks.filter((task) => task.active).length;
    for (const task of this.tasks) {
      if (running >= this.concurrency) break;
      if (task.state === 'queued') {
        running += 1;
        task.start();
      }
    }
  }
}
