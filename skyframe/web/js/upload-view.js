// The upload area: drag and drop, file picker, and the list of uploads with progress, speed and ETA.

import { ApiError, uploadsApi } from './api.js';
import { h, icon, progressBar, setIcon, toast } from './dom.js';
import { formatBytes, formatEta, formatPercent, formatSpeed } from './format.js';
import { UploadQueue, pendingStore } from './upload.js';

const DONE_LINGER_MS = 8000;

export class UploadView {
  /**
   * @param {object} opts
   * @param {HTMLElement} opts.dropzone
   * @param {HTMLInputElement} opts.input
   * @param {HTMLElement} opts.list   the <ul> for upload rows
   * @param {HTMLElement} opts.section the section wrapping the list (hidden while empty)
   * @param {(upload: object, task: object) => void} opts.onUploaded
   */
  constructor({ dropzone, input, list, section, onUploaded }) {
    this.dropzone = dropzone;
    this.input = input;
    this.list = list;
    this.section = section;
    this.onUploaded = onUploaded;
    this.queue = new UploadQueue();
    this.rows = new Map(); // task -> {el, update}
    this.pendingRows = new Map(); // fingerprint -> li

    this.queue.addEventListener('added', (e) => this.addRow(e.detail));
    this.queue.addEventListener('removed', (e) => this.removeRow(e.detail));
    this.queue.addEventListener('uploaded', (e) => {
      const task = e.detail;
      toast(`${task.file.name} uploaded`, { kind: 'success' });
      this.onUploaded?.(task.upload, task);
      setTimeout(() => {
        if (task.state === 'done') this.queue.remove(task);
      }, DONE_LINGER_MS);
    });

    input.addEventListener('change', () => {
      if (input.files?.length) this.addFiles([...input.files]);
      input.value = '';
    });
    this.bindDrop();
    window.addEventListener('beforeunload', (event) => {
      if (this.queue.tasks.some((task) => task.active)) {
        event.preventDefault();
        event.returnValue = '';
      }
    });
  }

  addFiles(files) {
    if (files.length) this.queue.add(files);
  }

  bindDrop() {
    const zone = this.dropzone;
    let depth = 0;
    const hasFiles = (event) => [...(event.dataTransfer?.types ?? [])].includes('Files');
    // Accept drops anywhere on the page, highlight the drop zone.
    document.addEventListener('dragenter', (event) => {
      if (!hasFiles(event)) return;
      depth += 1;
      zone.classList.add('is-dragover');
      document.body.classList.add('is-dragging');
    });
    document.addEventListener('dragleave', (event) => {
      if (!hasFiles(event)) return;
      depth = Math.max(0, depth - 1);
      if (!depth) {
        zone.classList.remove('is-dragover');
        document.body.classList.remove('is-dragging');
      }
    });
    document.addEventListener('dragover', (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = 'copy';
    });
    document.addEventListener('drop', (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      depth = 0;
      zone.classList.remove('is-dragover');
      document.body.classList.remove('is-dragging');
      this.addFiles([...event.dataTransfer.files]);
    });
    // A click anywhere in the zone opens the picker; keyboard users focus the (visually hidden) input,
    // and the zone shows the focus ring through :focus-within.
    zone.addEventListener('click', (event) => {
      if (event.target === this.input || event.target.closest('label')) return;
      this.input.click();
    });
  }

  syncVisibility() {
    this.section.hidden = this.list.children.length === 0;
  }

  // ---- Rows for live tasks ----------------------------------------------------------------------

  addRow(task) {
    this.pendingRows.get(task.fp)?.remove();
    this.pendingRows.delete(task.fp);

    const name = task.file.name;
    const bar = progressBar(`Upload progress of ${name}`, 'upload-progress');
    const pauseIcon = icon('pause');
    const pauseLabel = h('span.visually-hidden', {}, `Pause upload of ${name}`);
    const pauseBtn = h(
      'button.btn.btn-icon.btn-ghost',
      { type: 'button', dataset: { testid: 'upload-pause' }, title: 'Pause' },
      pauseIcon,
      pauseLabel,
    );
    const cancelLabel = h('span.visually-hidden', {}, `Cancel upload of ${name}`);
    const cancelBtn = h(
      'button.btn.btn-icon.btn-ghost',
      { type: 'button', dataset: { testid: 'upload-cancel' }, title: 'Cancel' },
      icon('x'),
      cancelLabel,
    );
    const status = h('p.upload-status', { dataset: { testid: 'upload-status' } });
    const errorText = h('p.upload-error', { role: 'alert', dataset: { testid: 'upload-error' }, hidden: true });
    const el = h(
      'li.upload-item',
      { dataset: { testid: 'upload-item', fingerprint: task.fp } },
      h(
        'div.upload-row',
        {},
        h('span.upload-name', { title: name, dataset: { testid: 'upload-name' } }, name),
        h('span.upload-size', {}, formatBytes(task.size)),
        h('div.upload-actions', {}, pauseBtn, cancelBtn),
      ),
      bar.el,
      status,
      errorText,
    );

    pauseBtn.addEventListener('click', () => {
      if (task.state === 'paused') this.queue.resume(task);
      else task.pause();
    });
    cancelBtn.addEventListener('click', async () => {
      if (task.finished) {
        this.queue.remove(task);
        return;
      }
      await task.cancel();
      this.queue.remove(task);
    });

    let frame = 0;
    const update = () => {
      frame = 0;
      const { state } = task;
      el.dataset.state = state;
      bar.set(task.percent, `${formatPercent(task.percent)} uploaded`);
      bar.indeterminate(state === 'processing' || state === 'checking');
      const canPause = ['queued', 'checking', 'uploading', 'retrying'].includes(state);
      pauseBtn.hidden = !(canPause || state === 'paused');
      setIcon(pauseIcon, state === 'paused' ? 'play' : 'pause');
      pauseBtn.title = state === 'paused' ? 'Resume' : 'Pause';
      pauseLabel.textContent = `${state === 'paused' ? 'Resume' : 'Pause'} upload of ${name}`;
      pauseBtn.setAttribute('aria-pressed', String(state === 'paused'));
      cancelBtn.title = task.finished ? 'Dismiss' : 'Cancel';
      cancelLabel.textContent = `${task.finished ? 'Dismiss' : 'Cancel upload of'} ${name}`;
      status.textContent = statusText(task);
      errorText.hidden = state !== 'error';
      errorText.textContent = state === 'error' ? task.message : '';
    };
    const schedule = () => {
      if (!frame) frame = requestAnimationFrame(update);
    };
    task.addEventListener('change', schedule);
    update();
    this.rows.set(task, { el });
    this.list.prepend(el);
    this.syncVisibility();
  }

  removeRow(task) {
    const row = this.rows.get(task);
    if (!row) return;
    const focused = row.el.contains(document.activeElement);
    row.el.remove();
    this.rows.delete(task);
    if (focused) this.input.focus();
    this.syncVisibility();
  }

  // ---- Unfinished uploads from an earlier visit ---------------------------------------------------

  /** Show uploads this browser started earlier and never finished, with how much the server holds. */
  async restorePending() {
    const entries = Object.entries(pendingStore.all());
    for (const [fp, entry] of entries) {
      if (this.queue.tasks.some((task) => task.fp === fp)) continue;
      let received = 0;
      try {
        const upload = await uploadsApi.get(entry.uploadId);
        if (upload.status !== 'pending') {
          pendingStore.remove(fp);
          continue;
        }
        received = upload.receivedBytes ?? 0;
      } catch (error) {
        if (error instanceof ApiError && !error.retryable) {
          pendingStore.remove(fp);
          continue;
        }
      }
      if (this.queue.tasks.some((task) => task.fp === fp)) continue;
      this.addPendingRow(fp, entry, received);
    }
  }

  addPendingRow(fp, entry, received) {
    const percent = entry.size ? (received / entry.size) * 100 : 0;
    const bar = progressBar(`Stored part of ${entry.name}`, 'upload-progress');
    bar.set(percent);
    const chooseBtn = h(
      'button.btn.btn-secondary.btn-small',
      { type: 'button', dataset: { testid: 'pending-choose' }, onclick: () => this.input.click() },
      icon('play'),
      h('span', {}, 'Choose file to resume'),
    );
    const discardBtn = h(
      'button.btn.btn-ghost.btn-small',
      {
        type: 'button',
        dataset: { testid: 'pending-discard' },
        onclick: async () => {
          pendingStore.remove(fp);
          li.remove();
          this.pendingRows.delete(fp);
          this.syncVisibility();
          await uploadsApi.remove(entry.uploadId).catch(() => {});
        },
      },
      h('span', {}, 'Discard'),
      h('span.visually-hidden', {}, ` unfinished upload of ${entry.name}`),
    );
    const li = h(
      'li.upload-item.upload-item-pending',
      { dataset: { testid: 'pending-upload', fingerprint: fp, uploadId: entry.uploadId, state: 'interrupted' } },
      h(
        'div.upload-row',
        {},
        h('span.upload-name', { title: entry.name }, entry.name),
        h('span.upload-size', {}, formatBytes(entry.size)),
      ),
      bar.el,
      h(
        'p.upload-status',
        { dataset: { testid: 'upload-status' } },
        `Interrupted at ${formatPercent(percent)} (${formatBytes(received)} stored). `,
        'Choose or drop the same file to resume.',
      ),
      h('div.button-row', {}, chooseBtn, discardBtn),
    );
    this.pendingRows.set(fp, li);
    this.list.append(li);
    this.syncVisibility();
  }
}

function statusText(task) {
  switch (task.state) {
    case 'queued':
      return 'Waiting…';
    case 'uploading': {
      const parts = [formatPercent(task.percent)];
      if (task.speed > 0) parts.push(formatSpeed(task.speed), formatEta(task.eta));
      if (task.resumedFrom) parts.push(`resumed at ${formatBytes(task.resumedFrom)}`);
      return parts.filter(Boolean).join(' · ');
    }
    case 'paused':
      return `Paused at ${formatPercent(task.percent)}`;
    case 'done':
      return 'Uploaded';
    case 'error':
      return 'Refused';
    default:
      return task.message;
  }
}
