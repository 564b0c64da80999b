// Enhancement jobs of the selected clip, with live progress.
//
// Live updates come from `/api/jobs/{id}/events` (Server-Sent Events, `event: job`); if the stream fails
// the watcher falls back to polling GET /api/jobs/{id} every 3 s. Browsers allow only ~6 connections per
// host over HTTP/1.1, so at most MAX_STREAMS jobs are streamed at once and the rest are polled.

import { jobsApi, uploadsApi } from './api.js';
import { h, icon, progressBar, toast } from './dom.js';
import {
  RESOLUTION_LABELS,
  formatBytes,
  formatClock,
  formatEta,
  formatFps,
  formatPercent,
  formatStage,
  formatTimecode,
  targetSize,
} from './format.js';

export const TERMINAL = new Set(['completed', 'failed', 'canceled']);
const POLL_MS = 3000;
const MAX_STREAMS = 3;
let openStreams = 0;

const STATUS_LABELS = {
  pending: 'Queued',
  running: 'Running',
  completed: 'Completed',
  failed: 'Failed',
  canceled: 'Canceled',
};

/** Follows one job until it reaches a terminal status; calls onJob(job) on every change. */
export class JobWatcher {
  constructor(jobId, onJob) {
    this.jobId = jobId;
    this.onJob = onJob;
    this.source = null;
    this.timer = null;
    this.stopped = false;
    this.mode = null;
  }

  start() {
    if (typeof EventSource === 'function' && openStreams < MAX_STREAMS) this.stream();
    else this.poll(0);
    return this;
  }

  stream() {
    this.mode = 'stream';
    openStreams += 1;
    const source = new EventSource(jobsApi.eventsUrl(this.jobId));
    this.source = source;
    const onData = (event) => {
      try {
        this.deliver(JSON.parse(event.data));
      } catch {
        // Ignore malformed events; the next one or the poller will catch up.
      }
    };
    source.addEventListener('job', onData);
    source.addEventListener('message', onData);
    source.addEventListener('error', () => {
      if (this.stopped) return;
      // The stream broke (or ended before a terminal status): switch to polling.
      this.closeStream();
      this.poll(0);
    });
  }

  closeStream() {
    if (this.source) {
      this.source.close();
      this.source = null;
      openStreams -= 1;
    }
  }

  poll(delay = POLL_MS) {
    this.mode = 'poll';
    clearTimeout(this.timer);
    this.timer = setTimeout(async () => {
      if (this.stopped) return;
      try {
        this.deliver(await jobsApi.get(this.jobId));
      } catch (error) {
        if (error.status === 404) {
          this.stop();
          return;
        }
      }
      if (!this.stopped) this.poll();
    }, delay);
  }

  deliver(job) {
    if (this.stopped || !job || job.jobId !== this.jobId) return;
    this.onJob(job);
    if (TERMINAL.has(job.status)) this.stop();
  }

  stop() {
    this.stopped = true;
    this.closeStream();
    clearTimeout(this.timer);
  }
}

/** The job list of one upload. */
export class JobList {
  /**
   * @param {object} opts
   * @param {(key: string) => object|null} opts.modelByKey
   * @param {(job: object) => void} opts.onCompare
   * @param {(job: object, previous: object|null) => void} opts.onUpdate
   */
  constructor({ list, empty, section, modelByKey, onCompare, onUpdate }) {
    this.list = list;
    this.empty = empty;
    this.section = section;
    this.modelByKey = modelByKey;
    this.onCompare = onCompare;
    this.onUpdate = onUpdate;
    this.upload = null;
    this.items = new Map(); // jobId -> JobItem
    this.watchers = new Map(); // jobId -> JobWatcher
    this.loadToken = 0;
  }

  get(jobId) {
    return this.items.get(jobId)?.job ?? null;
  }

  jobs() {
    return [...this.items.values()].map((item) => item.job);
  }

  async show(upload) {
    const token = ++this.loadToken;
    this.clear();
    this.upload = upload;
    this.section.hidden = !upload;
    if (!upload) return;
    this.empty.hidden = true;
    let jobs = [];
    try {
      ({ jobs = [] } = await uploadsApi.jobs(upload.uploadId));
    } catch (error) {
      if (token !== this.loadToken) return;
      this.empty.textContent = `Could not load enhancements: ${error.message}`;
      this.empty.hidden = false;
      return;
    }
    if (token !== this.loadToken) return;
    this.empty.textContent = 'No enhancements for this clip yet.';
    for (const job of [...jobs].reverse()) this.add(job);
    this.syncEmpty();
  }

  clear() {
    for (const watcher of this.watchers.values()) watcher.stop();
    this.watchers.clear();
    this.items.clear();
    this.list.replaceChildren();
  }

  add(job) {
    if (!this.upload || job.uploadId !== this.upload.uploadId) return;
    if (this.items.has(job.jobId)) {
      this.update(job);
      return;
    }
    const item = new JobItem(job, this);
    this.items.set(job.jobId, item);
    this.list.prepend(item.el);
    this.syncEmpty();
    if (!TERMINAL.has(job.status)) this.watch(job.jobId);
  }

  watch(jobId) {
    this.watchers.get(jobId)?.stop();
    this.watchers.set(jobId, new JobWatcher(jobId, (job) => this.update(job)).start());
  }

  update(job) {
    const item = this.items.get(job.jobId);
    if (!item) return;
    const previous = item.job;
    item.update(job);
    if (TERMINAL.has(job.status)) this.watchers.delete(job.jobId);
    this.onUpdate?.(job, previous);
  }

  syncEmpty() {
    this.empty.hidden = this.items.size > 0;
  }

  async cancel(job) {
    try {
      this.update(await jobsApi.cancel(job.jobId));
    } catch (error) {
      toast(`Could not cancel: ${error.message}`, { kind: 'error' });
    }
  }

  async retry(job) {
    try {
      const next = await jobsApi.retry(job.jobId);
      this.add(next);
      this.items.get(next.jobId)?.el.querySelector('.job-title')?.focus?.();
      toast('Started again', { kind: 'info' });
    } catch (error) {
      toast(`Could not retry: ${error.message}`, { kind: 'error' });
    }
  }

  stopAll() {
    for (const watcher of this.watchers.values()) watcher.stop();
    this.watchers.clear();
  }
}

/** One job row. Built once and updated in place, so keyboard focus survives live updates. */
class JobItem {
  constructor(job, owner) {
    this.owner = owner;
    this.job = job;
    const model = owner.modelByKey(job.model);
    const modelTitle = (model?.title ?? job.model ?? 'Enhance').replace(/\s*\(.*\)\s*$/, '');

    this.badge = h('span.status-badge', { dataset: { testid: 'job-status' } });
    this.title = h('span.job-title', { tabIndex: -1 }, modelTitle);
    this.options = h('p.job-options', { dataset: { testid: 'job-options' } });
    this.bar = progressBar(`Progress of ${modelTitle}`, 'job-progress');
    this.stage = h('span', { dataset: { testid: 'job-stage' } });
    this.percent = h('span', { dataset: { testid: 'job-percent' } });
    this.fps = h('span', { dataset: { testid: 'job-fps' } });
    this.eta = h('span', { dataset: { testid: 'job-eta' } });
    this.frames = h('span', { dataset: { testid: 'job-frames' } });
    this.elapsed = h('span', { dataset: { testid: 'job-elapsed' } });
    this.stats = h(
      'p.job-stats',
      { dataset: { testid: 'job-stats' } },
      this.stage,
      this.percent,
      this.fps,
      this.eta,
      this.frames,
      this.elapsed,
    );
    this.error = h('p.job-error', { role: 'alert', dataset: { testid: 'job-error' }, hidden: true });
    this.output = h('p.job-output', { dataset: { testid: 'job-output' }, hidden: true });

    this.compareBtn = h(
      'button.btn.btn-primary.btn-small',
      { type: 'button', dataset: { testid: 'job-compare' }, onclick: () => owner.onCompare?.(this.job) },
      icon('compare'),
      h('span', {}, 'Compare'),
    );
    this.downloadLink = h(
      'a.btn.btn-secondary.btn-small',
      { dataset: { testid: 'job-download' }, download: '' },
      icon('download'),
      h('span', {}, 'Download'),
    );
    this.cancelBtn = h(
      'button.btn.btn-ghost.btn-small',
      { type: 'button', dataset: { testid: 'job-cancel' }, onclick: () => owner.cancel(this.job) },
      icon('stop'),
      h('span', {}, 'Cancel'),
    );
    this.retryBtn = h(
      'button.btn.btn-secondary.btn-small',
      { type: 'button', dataset: { testid: 'job-retry' }, onclick: () => owner.retry(this.job) },
      icon('retry'),
      h('span', {}, 'Retry'),
    );
    this.el = h(
      'li.job',
      { dataset: { testid: 'job-item', jobId: job.jobId }, 'aria-label': `${modelTitle} enhancement` },
      h('div.job-head', {}, this.badge, this.title),
      this.options,
      this.bar.el,
      this.stats,
      this.error,
      this.output,
      h('div.button-row', {}, this.compareBtn, this.downloadLink, this.retryBtn, this.cancelBtn),
    );
    this.update(job);
  }

  update(job) {
    this.job = job;
    const { status } = job;
    const terminal = TERMINAL.has(status);
    this.el.dataset.status = status;
    this.badge.className = `status-badge status-${status}`;
    this.badge.textContent = STATUS_LABELS[status] ?? status;
    this.options.textContent = describeOptions(job, this.owner.upload);

    const progress = status === 'completed' ? 100 : Number(job.progress) || 0;
    this.bar.set(progress, `${formatPercent(progress)}${job.stage ? `, ${formatStage(job.stage)}` : ''}`);
    this.bar.indeterminate(status === 'pending' || (status === 'running' && progress <= 0));
    this.bar.el.hidden = terminal && status !== 'completed';

    const running = status === 'running' || status === 'pending';
    this.stats.hidden = !running;
    this.stage.textContent = status === 'pending' ? 'Waiting for a worker' : formatStage(job.stage) || 'Starting';
    this.percent.textContent = formatPercent(progress);
    this.fps.textContent = job.fps > 0 ? `${formatFps(job.fps)} fps` : '';
    this.eta.textContent = job.etaSeconds > 0 ? formatEta(job.etaSeconds) : '';
    this.frames.textContent = job.framesTotal ? `frame ${job.framesDone ?? 0} of ${job.framesTotal}` : '';
    const seconds = status === 'running' ? elapsed(job) : null;
    this.elapsed.textContent = seconds !== null ? `${formatClock(seconds)} elapsed` : '';

    this.error.hidden = status !== 'failed';
    this.error.textContent = status === 'failed' ? job.error || 'The job failed.' : '';

    this.output.hidden = status !== 'completed' && status !== 'canceled';
    this.output.textContent = status === 'completed' ? describeOutput(job) : status === 'canceled' ? 'Canceled.' : '';

    this.compareBtn.hidden = status !== 'completed';
    this.downloadLink.hidden = status !== 'completed';
    if (status === 'completed') {
      this.downloadLink.href = job.downloadUrl || jobsApi.downloadUrl(job.jobId);
      this.downloadLink.setAttribute('download', ''); // the server names the file
      this.downloadLink.setAttribute('aria-label', `Download enhanced video (${describeSize(job, this.owner.upload)})`);
    }
    this.cancelBtn.hidden = terminal;
    this.retryBtn.hidden = !(status === 'failed' || status === 'canceled');
  }
}

function describeSize(job, upload) {
  const options = job.options ?? {};
  if (job.outputWidth && job.outputHeight) return `${job.outputWidth}×${job.outputHeight}`;
  const size = targetSize(upload?.media, options);
  const label = options.scale ? `${options.scale}×` : RESOLUTION_LABELS[options.resolution] ?? '';
  return size ? `${label} → ${size[0]}×${size[1]}` : label;
}

function describeOptions(job, upload) {
  const options = job.options ?? {};
  const parts = [];
  if (options.scale) parts.push(`${options.scale}×`);
  if (options.resolution) parts.push(RESOLUTION_LABELS[options.resolution] ?? options.resolution);
  const size = job.outputWidth && job.outputHeight ? [job.outputWidth, job.outputHeight] : targetSize(upload?.media, options);
  if (size) parts.push(`${size[0]}×${size[1]}`);
  if (options.crf !== undefined && options.crf !== null) parts.push(`CRF ${options.crf}`);
  if (options.codec) parts.push(options.codec === 'h265' ? 'H.265' : 'H.264');
  if (options.duration) {
    const start = options.start ?? 0;
    parts.push(`segment ${formatTimecode(start)}–${formatTimecode(start + options.duration)}`);
  }
  if (job.attempt > 1) parts.push(`attempt ${job.attempt}`);
  return parts.join(' · ');
}

function describeOutput(job) {
  const parts = [];
  if (job.outputSize) parts.push(formatBytes(job.outputSize));
  const seconds = elapsed(job);
  if (seconds !== null) parts.push(`took ${formatClock(seconds)}`);
  if (Number.isFinite(job.costEstimate) && job.costEstimate > 0) parts.push(`≈ $${job.costEstimate.toFixed(2)}`);
  return parts.length ? `Done · ${parts.join(' · ')}` : 'Done';
}

/** Seconds the job has run (the server's elapsedSeconds, else from its timestamps), or null. */
function elapsed(job) {
  if (Number.isFinite(job.elapsedSeconds)) return job.elapsedSeconds;
  if (!job.startedAt) return null;
  const end = job.finishedAt ? new Date(job.finishedAt) : new Date();
  const seconds = (end - new Date(job.startedAt)) / 1000;
  return Number.isFinite(seconds) && seconds >= 0 ? seconds : null;
}
