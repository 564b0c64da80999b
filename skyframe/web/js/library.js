// The library: uploaded clips as cards, and the details of the selected one.

import { uploadsApi } from './api.js';
import { h } from './dom.js';
import {
  formatBitRate,
  formatBytes,
  formatDate,
  formatDuration,
  formatFps,
  formatResolution,
} from './format.js';

export class Library {
  /**
   * @param {object} opts
   * @param {HTMLElement} opts.grid    the <ul> of cards
   * @param {HTMLElement} opts.empty   "no clips" note
   * @param {HTMLElement} opts.count   the count badge
   * @param {(upload: object) => void} opts.onSelect
   */
  constructor({ grid, empty, count, onSelect }) {
    this.grid = grid;
    this.empty = empty;
    this.count = count;
    this.onSelect = onSelect;
    this.uploads = [];
    this.selectedId = null;
    this.loaded = false;
    grid.addEventListener('keydown', (event) => this.onKeydown(event));
  }

  get(id) {
    return this.uploads.find((upload) => upload.uploadId === id) ?? null;
  }

  async refresh() {
    const uploads = [];
    const pageSize = 100;
    for (let offset = 0; offset < 1000; offset += pageSize) {
      const page = await uploadsApi.list({ limit: pageSize, offset });
      uploads.push(...(page.uploads ?? []));
      if (uploads.length >= (page.total ?? 0) || !page.uploads?.length) break;
    }
    this.uploads = uploads.filter((upload) => upload.status === 'ready');
    this.loaded = true;
    this.render();
    return this.uploads;
  }

  /** Add or replace one upload (newest first). */
  upsert(upload) {
    if (upload.status !== 'ready') return;
    const index = this.uploads.findIndex((u) => u.uploadId === upload.uploadId);
    if (index >= 0) this.uploads[index] = upload;
    else this.uploads.unshift(upload);
    this.render();
  }

  remove(id) {
    this.uploads = this.uploads.filter((upload) => upload.uploadId !== id);
    if (this.selectedId === id) this.selectedId = null;
    this.render();
  }

  select(id) {
    this.selectedId = id;
    for (const card of this.grid.querySelectorAll('.clip-card')) {
      const selected = card.dataset.uploadId === id;
      card.setAttribute('aria-pressed', String(selected));
      card.classList.toggle('is-selected', selected);
    }
  }

  render() {
    const focusedId = document.activeElement?.closest?.('.clip-card')?.dataset.uploadId;
    this.grid.replaceChildren(...this.uploads.map((upload) => h('li', {}, this.card(upload))));
    this.empty.hidden = this.uploads.length > 0 || !this.loaded;
    this.count.textContent = String(this.uploads.length);
    this.count.setAttribute('aria-label', `${this.uploads.length} clip${this.uploads.length === 1 ? '' : 's'}`);
    if (focusedId) this.grid.querySelector(`[data-upload-id="${CSS.escape(focusedId)}"]`)?.focus();
  }

  card(upload) {
    const media = upload.media ?? {};
    const selected = upload.uploadId === this.selectedId;
    const img = h('img', {
      src: upload.thumbnailUrl || uploadsApi.thumbnailUrl(upload.uploadId),
      alt: '',
      loading: 'lazy',
      decoding: 'async',
      width: 160,
      height: 90,
    });
    img.addEventListener('error', () => img.closest('.thumb')?.classList.add('thumb-missing'), { once: true });
    const fps = formatFps(media.fps);
    return h(
      'button.clip-card',
      {
        type: 'button',
        class: selected ? 'is-selected' : '',
        'aria-pressed': String(selected),
        dataset: { testid: 'upload-card', uploadId: upload.uploadId },
        onclick: () => this.onSelect?.(upload),
      },
      h(
        'span.thumb',
        {},
        img,
        h('span.thumb-badge', { dataset: { testid: 'card-duration' } }, formatDuration(media.duration)),
      ),
      h(
        'span.clip-info',
        {},
        h('span.clip-name', { title: upload.filename, dataset: { testid: 'card-name' } }, upload.filename),
        h(
          'span.clip-meta',
          {},
          h('span', { dataset: { testid: 'card-resolution' } }, formatResolution(media)),
          h('span', { dataset: { testid: 'card-fps' } }, fps === '–' ? '–' : `${fps} fps`),
        ),
        h(
          'span.clip-meta.clip-sub',
          {},
          h('span', { dataset: { testid: 'card-size' } }, formatBytes(upload.size)),
          h('span', { dataset: { testid: 'card-date' } }, formatDate(upload.completedAt || upload.createdAt, { short: true })),
        ),
      ),
    );
  }

  /** Arrow keys move between cards (the list behaves like one toolbar of choices). */
  onKeydown(event) {
    const cards = [...this.grid.querySelectorAll('.clip-card')];
    const index = cards.indexOf(document.activeElement);
    if (index < 0) return;
    const step = { ArrowDown: 1, ArrowRight: 1, ArrowUp: -1, ArrowLeft: -1 }[event.key];
    let next = null;
    if (step) next = cards[Math.min(cards.length - 1, Math.max(0, index + step))];
    else if (event.key === 'Home') next = cards[0];
    else if (event.key === 'End') next = cards[cards.length - 1];
    if (next) {
      event.preventDefault();
      next.focus();
    }
  }
}

/** Fill the details list for one upload. */
export function renderDetails({ name, meta, download }, upload) {
  const media = upload.media ?? {};
  name.textContent = upload.filename;
  name.title = upload.filename;
  const rows = [
    ['resolution', 'Resolution', formatResolution(media)],
    ['fps', 'Frame rate', media.fps ? `${formatFps(media.fps)} fps` : '–'],
    ['duration', 'Duration', formatDuration(media.duration)],
    ['frames', 'Frames', media.frameCount ? String(media.frameCount) : '–'],
    ['size', 'File size', formatBytes(upload.size)],
    ['video', 'Video', [media.videoCodec, media.pixelFormat].filter(Boolean).join(' · ') || '–'],
    ['container', 'Container', media.container || '–'],
    ['bitrate', 'Bit rate', formatBitRate(media.bitRate)],
    ['audio', 'Audio', media.hasAudio ? media.audioCodec || 'Yes' : 'None'],
  ];
  const color = [media.colorPrimaries, media.colorTransfer].filter((v) => v && v !== 'unknown').join(' / ');
  if (color) rows.push(['color', 'Colour', color]);
  if (media.rotation) rows.push(['rotation', 'Rotation', `${media.rotation}°`]);
  rows.push(['uploaded', 'Uploaded', formatDate(upload.completedAt || upload.createdAt)]);
  meta.replaceChildren(
    ...rows.map(([key, label, value]) =>
      h(
        'div.meta-row',
        { class: key === 'uploaded' || key === 'color' ? 'meta-row-wide' : '' },
        h('dt', {}, label),
        h('dd', { dataset: { testid: `meta-${key}` } }, value),
      ),
    ),
  );
  download.href = upload.downloadUrl || uploadsApi.downloadUrl(upload.uploadId);
  download.setAttribute('download', upload.filename);
  download.setAttribute('aria-label', `Download original ${upload.filename}`);
}
