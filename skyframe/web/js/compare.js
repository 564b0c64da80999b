// Before/after compare: original and enhanced in one frame with a draggable wipe, played in sync,
// plus a still-frame mode that draws both current frames to canvases at 1:1 pixels with zoom and pan.

import { h, icon, setIcon } from './dom.js';
import { formatTimecode } from './format.js';

const DRIFT_LIMIT = 0.08; // seconds the original may drift from the enhanced video while playing
const ZOOMS = [
  ['fit', 'Fit'],
  [1, '1:1'],
  [2, '2×'],
  [4, '4×'],
];

/** Resolve once `video` shows the frame at time `t` (or after a timeout). */
function seekVideo(video, t) {
  return new Promise((resolve) => {
    const target = Math.max(0, Math.min(t, Number.isFinite(video.duration) ? video.duration : t));
    const ready = () => video.readyState >= 2;
    let timer = 0;
    const done = () => {
      clearTimeout(timer);
      video.removeEventListener('seeked', onSeeked);
      video.removeEventListener('loadeddata', onSeeked);
      resolve();
    };
    const onSeeked = () => {
      if (ready() && !video.seeking) done();
    };
    timer = setTimeout(done, 4000);
    video.addEventListener('seeked', onSeeked);
    video.addEventListener('loadeddata', onSeeked);
    if (Math.abs(video.currentTime - target) > 1e-4) video.currentTime = target;
    else onSeeked();
  });
}

export class CompareView extends EventTarget {
  constructor(root) {
    super();
    this.root = root;
    this.upload = null;
    this.job = null;
    this.mode = 'video';
    this.wipe = 50;
    this.zoom = 1;
    this.smooth = false;
    this.raf = 0;
    this.stillToken = 0;
    this.stillCentered = false;
    this.build();
  }

  // ---- DOM -----------------------------------------------------------------------------------------

  build() {
    this.original = h('video.compare-video', {
      muted: true,
      playsInline: true,
      preload: 'auto',
      'aria-label': 'Original video',
      dataset: { testid: 'compare-original' },
    });
    this.enhanced = h('video.compare-video', {
      muted: true,
      playsInline: true,
      preload: 'auto',
      'aria-label': 'Enhanced video',
      dataset: { testid: 'compare-enhanced' },
    });
    this.topLayer = h('div.compare-top', { dataset: { testid: 'compare-enhanced-layer' } }, this.enhanced);
    this.handle = this.wipeHandle('compare-slider');
    this.loading = h('div.compare-loading', { dataset: { testid: 'compare-loading' } }, h('span.spinner'), 'Loading videos…');
    this.frame = h(
      'div.compare-frame',
      { dataset: { testid: 'compare-frame' } },
      this.original,
      this.topLayer,
      h('span.compare-label.compare-label-left', { 'aria-hidden': 'true' }, 'Original'),
      h('span.compare-label.compare-label-right', { 'aria-hidden': 'true' }, 'Enhanced'),
      this.handle,
      this.loading,
    );

    // Still-frame mode
    this.canvasOriginal = h('canvas.still-canvas', { dataset: { testid: 'still-original' }, 'aria-hidden': 'true' });
    this.canvasEnhanced = h('canvas.still-canvas.still-canvas-top', { dataset: { testid: 'still-enhanced' }, 'aria-hidden': 'true' });
    this.stage = h('div.still-stage', {}, this.canvasOriginal, this.canvasEnhanced);
    this.viewport = h(
      'div.still-viewport',
      {
        tabIndex: 0,
        role: 'region',
        'aria-label': 'Still frame. Drag or use the arrow keys to pan.',
        dataset: { testid: 'still-viewport' },
      },
      this.stage,
    );
    this.stillHandle = this.wipeHandle('still-slider');
    this.stillWrap = h(
      'div.still-wrap',
      { hidden: true, dataset: { testid: 'still-view' } },
      this.viewport,
      h('span.compare-label.compare-label-left', { 'aria-hidden': 'true' }, 'Original'),
      h('span.compare-label.compare-label-right', { 'aria-hidden': 'true' }, 'Enhanced'),
      this.stillHandle,
    );
    this.box = h('div.compare-box', {}, this.frame, this.stillWrap);

    // Toolbar
    this.modeVideo = h('button.seg-btn', { type: 'button', 'aria-pressed': 'true', dataset: { testid: 'mode-video' } }, icon('play'), h('span', {}, 'Video'));
    this.modeStill = h('button.seg-btn', { type: 'button', 'aria-pressed': 'false', dataset: { testid: 'mode-still' } }, icon('still'), h('span', {}, 'Still frame'));
    this.modeVideo.addEventListener('click', () => this.setMode('video'));
    this.modeStill.addEventListener('click', () => this.setMode('still'));
    this.zoomButtons = ZOOMS.map(([value, label]) => {
      const btn = h(
        'button.seg-btn',
        { type: 'button', 'aria-pressed': String(value === this.zoom), dataset: { testid: `zoom-${value}`, zoom: String(value) } },
        label,
      );
      btn.addEventListener('click', () => this.setZoom(value));
      return btn;
    });
    this.scaleNearest = h('button.seg-btn', { type: 'button', 'aria-pressed': 'true', dataset: { testid: 'scaling-nearest' } }, 'Nearest');
    this.scaleSmooth = h('button.seg-btn', { type: 'button', 'aria-pressed': 'false', dataset: { testid: 'scaling-smooth' } }, 'Smooth');
    this.scaleNearest.addEventListener('click', () => this.setSmooth(false));
    this.scaleSmooth.addEventListener('click', () => this.setSmooth(true));
    this.stillTools = h(
      'div.still-tools',
      { hidden: true },
      h('div.seg-group', { role: 'group', 'aria-label': 'Zoom' }, this.zoomButtons),
      h('div.seg-group', { role: 'group', 'aria-label': 'Upscaling of the original' }, this.scaleNearest, this.scaleSmooth),
    );
    const toolbar = h(
      'div.compare-toolbar',
      {},
      h('div.seg-group', { role: 'group', 'aria-label': 'Compare mode' }, this.modeVideo, this.modeStill),
      this.stillTools,
    );

    // Transport
    this.playIcon = icon('play');
    this.playBtn = h('button.btn.btn-icon.transport-play', { type: 'button', 'aria-label': 'Play both', dataset: { testid: 'compare-play' } }, this.playIcon);
    this.playBtn.addEventListener('click', () => this.togglePlay());
    const back = h('button.btn.btn-icon.btn-ghost', { type: 'button', 'aria-label': 'Previous frame', title: 'Previous frame (,)', dataset: { testid: 'compare-prev-frame' } }, icon('step-back'));
    const fwd = h('button.btn.btn-icon.btn-ghost', { type: 'button', 'aria-label': 'Next frame', title: 'Next frame (.)', dataset: { testid: 'compare-next-frame' } }, icon('step-fwd'));
    back.addEventListener('click', () => this.stepFrame(-1));
    fwd.addEventListener('click', () => this.stepFrame(1));
    this.seek = h('input.seek', { type: 'range', min: '0', max: '0', step: 'any', value: '0', 'aria-label': 'Seek both videos', dataset: { testid: 'compare-seek' } });
    this.seek.addEventListener('input', () => this.seekTo(Number(this.seek.value)));
    this.time = h('span.transport-time', { dataset: { testid: 'compare-time' } }, '0:00.0 / 0:00.0');
    this.soundIcon = icon('mute');
    this.soundBtn = h('button.btn.btn-icon.btn-ghost', { type: 'button', 'aria-label': 'Sound of the original', 'aria-pressed': 'false', dataset: { testid: 'compare-sound' } }, this.soundIcon);
    this.soundBtn.addEventListener('click', () => {
      this.original.muted = !this.original.muted;
      this.soundBtn.setAttribute('aria-pressed', String(!this.original.muted));
      setIcon(this.soundIcon, this.original.muted ? 'mute' : 'sound');
    });
    const transport = h('div.transport', {}, this.playBtn, back, fwd, this.seek, this.time, this.soundBtn);

    this.note = h('p.compare-note', { dataset: { testid: 'compare-note' } });
    this.error = h('p.form-error', { role: 'alert', hidden: true, dataset: { testid: 'compare-error' } });

    this.el = h('div.compare', { dataset: { testid: 'compare', mode: 'video' } }, toolbar, this.box, transport, this.note, this.error);
    this.root.replaceChildren(this.el);

    this.bindVideos();
    this.bindWipe();
    this.bindPan();
    this.el.addEventListener('keydown', (event) => this.onKeydown(event));
    new ResizeObserver(() => this.layoutStill()).observe(this.box);
  }

  wipeHandle(testid) {
    const handle = h(
      'div.wipe-handle',
      {
        role: 'slider',
        tabIndex: 0,
        'aria-label': 'Wipe position: original on the left, enhanced on the right',
        'aria-valuemin': '0',
        'aria-valuemax': '100',
        'aria-valuenow': '50',
        'aria-orientation': 'horizontal',
        dataset: { testid: testid },
      },
      h('span.wipe-line'),
      h('span.wipe-knob', {}, icon('compare')),
    );
    handle.addEventListener('keydown', (event) => {
      const big = event.shiftKey ? 10 : 1;
      const delta = { ArrowLeft: -big, ArrowDown: -big, ArrowRight: big, ArrowUp: big, PageDown: -10, PageUp: 10 }[event.key];
      if (delta !== undefined) this.setWipe(this.wipe + delta);
      else if (event.key === 'Home') this.setWipe(0);
      else if (event.key === 'End') this.setWipe(100);
      else return;
      event.preventDefault();
      event.stopPropagation();
    });
    return handle;
  }

  // ---- Open / close --------------------------------------------------------------------------------

  get offset() {
    return Number(this.job?.options?.start) || 0;
  }

  get fps() {
    return Number(this.upload?.media?.fps) || 30;
  }

  open(upload, job, enhancedUrl) {
    this.upload = upload;
    this.job = job;
    this.error.hidden = true;
    this.loading.hidden = false;
    this.el.dataset.ready = 'false';
    const media = upload.media ?? {};
    const w = job.outputWidth || media.displayWidth || media.width || 16;
    const hgt = job.outputHeight || media.displayHeight || media.height || 9;
    this.box.style.setProperty('--ar', String(w / hgt));
    this.original.src = upload.downloadUrl || `/api/uploads/${encodeURIComponent(upload.uploadId)}/download`;
    this.enhanced.src = enhancedUrl;
    this.original.currentTime = this.offset;
    this.stillCentered = false;
    this.setWipe(50);
    this.setMode('video');
    this.updateNote();
    this.updateTransport();
  }

  close() {
    this.pause();
    cancelAnimationFrame(this.raf);
    for (const video of [this.original, this.enhanced]) {
      video.removeAttribute('src');
      video.load();
    }
    this.upload = null;
    this.job = null;
  }

  updateNote() {
    const media = this.upload?.media ?? {};
    const ow = media.displayWidth || media.width;
    const oh = media.displayHeight || media.height;
    const ew = this.enhanced.videoWidth || this.job?.outputWidth;
    const eh = this.enhanced.videoHeight || this.job?.outputHeight;
    const parts = [];
    if (ow && ew) parts.push(`Original ${ow}×${oh} shown scaled up to the enhanced ${ew}×${eh}.`);
    if (this.offset || this.job?.options?.duration) parts.push(`Segment from ${formatTimecode(this.offset)} of the original.`);
    parts.push('Drag the divider or use the arrow keys on it to move the wipe.');
    this.note.textContent = parts.join(' ');
  }

  // ---- Playback in sync ----------------------------------------------------------------------------

  bindVideos() {
    const { original, enhanced } = this;
    const checkReady = () => {
      if (original.readyState >= 2 && enhanced.readyState >= 2) {
        this.loading.hidden = true;
        this.el.dataset.ready = 'true';
        this.dispatchEvent(new Event('ready'));
      }
    };
    for (const video of [original, enhanced]) {
      video.addEventListener('loadeddata', checkReady);
      video.addEventListener('canplay', checkReady);
    }
    enhanced.addEventListener('loadedmetadata', () => {
      if (enhanced.videoWidth && enhanced.videoHeight) {
        this.box.style.setProperty('--ar', String(enhanced.videoWidth / enhanced.videoHeight));
      }
      this.updateNote();
      this.updateTransport();
    });
    original.addEventListener('loadedmetadata', () => {
      if (Math.abs(original.currentTime - (enhanced.currentTime + this.offset)) > 0.01) {
        original.currentTime = enhanced.currentTime + this.offset;
      }
    });
    enhanced.addEventListener('play', () => this.updateTransport());
    enhanced.addEventListener('pause', () => {
      original.pause();
      this.updateTransport();
    });
    enhanced.addEventListener('ended', () => {
      original.pause();
      this.updateTransport();
    });
    enhanced.addEventListener('waiting', () => original.pause());
    enhanced.addEventListener('playing', () => {
      if (original.paused) original.play().catch(() => {});
    });
    enhanced.addEventListener('timeupdate', () => this.updateTransport());
    enhanced.addEventListener('seeked', () => this.updateTransport());
    enhanced.addEventListener('error', () => {
      this.loading.hidden = true;
      this.showError(
        this.job?.options?.codec === 'h265'
          ? 'This browser cannot play the enhanced H.265 video. Download it to watch it in a desktop player.'
          : 'The enhanced video could not be loaded.',
      );
    });
    original.addEventListener('error', () => {
      this.loading.hidden = true;
      this.showError('The original video could not be played in this browser.');
    });
  }

  showError(message) {
    this.error.textContent = message;
    this.error.hidden = false;
  }

  get playing() {
    return !this.enhanced.paused && !this.enhanced.ended;
  }

  togglePlay() {
    if (this.playing) this.pause();
    else this.play();
  }

  async play() {
    if (this.mode === 'still') this.setMode('video');
    const { original, enhanced } = this;
    if (enhanced.ended || enhanced.currentTime >= (enhanced.duration || Infinity) - 0.01) enhanced.currentTime = 0;
    original.currentTime = enhanced.currentTime + this.offset;
    await Promise.allSettled([enhanced.play(), original.play()]);
    this.loop();
  }

  pause() {
    this.enhanced.pause();
    this.original.pause();
    cancelAnimationFrame(this.raf);
    if (this.upload && Number.isFinite(this.enhanced.currentTime)) {
      this.original.currentTime = this.enhanced.currentTime + this.offset;
    }
    this.updateTransport();
  }

  /** While playing, keep the original within DRIFT_LIMIT of the enhanced video (the clock). */
  loop() {
    cancelAnimationFrame(this.raf);
    const tick = () => {
      if (!this.playing) return;
      const target = this.enhanced.currentTime + this.offset;
      if (!this.original.seeking && Math.abs(this.original.currentTime - target) > DRIFT_LIMIT) {
        this.original.currentTime = target;
      }
      if (this.original.paused && !this.enhanced.paused) this.original.play().catch(() => {});
      this.updateTransport();
      this.raf = requestAnimationFrame(tick);
    };
    this.raf = requestAnimationFrame(tick);
  }

  async seekTo(t) {
    const duration = this.enhanced.duration;
    const time = Math.max(0, Math.min(t, Number.isFinite(duration) ? duration : t));
    this.enhanced.currentTime = time;
    this.original.currentTime = time + this.offset;
    this.updateTransport();
    if (this.mode === 'still') await this.captureStill();
  }

  stepFrame(direction) {
    if (this.playing) this.pause();
    const frame = Math.round(this.enhanced.currentTime * this.fps - 0.5) + direction;
    // Aim at the middle of a frame so both decoders land on the same one.
    this.seekTo((Math.max(0, frame) + 0.5) / this.fps);
  }

  updateTransport() {
    const duration = Number.isFinite(this.enhanced.duration) ? this.enhanced.duration : 0;
    const current = this.enhanced.currentTime || 0;
    this.seek.max = String(duration);
    if (document.activeElement !== this.seek || this.playing) this.seek.value = String(current);
    this.seek.setAttribute('aria-valuetext', `${formatTimecode(current)} of ${formatTimecode(duration)}`);
    this.time.textContent = `${formatTimecode(current)} / ${formatTimecode(duration)}`;
    const playing = this.playing;
    setIcon(this.playIcon, playing ? 'pause' : 'play');
    this.playBtn.setAttribute('aria-label', playing ? 'Pause both' : 'Play both');
    this.el.dataset.playing = String(playing);
  }

  onKeydown(event) {
    if (event.target.closest('input, select, textarea, [role="slider"]')) return;
    if (event.key === ',' || event.key === '.') {
      event.preventDefault();
      this.stepFrame(event.key === ',' ? -1 : 1);
    } else if ((event.key === ' ' || event.key === 'k') && !event.target.closest('button, a')) {
      event.preventDefault();
      this.togglePlay();
    }
  }

  // ---- Wipe -----------------------------------------------------------------------------------------

  setWipe(value) {
    this.wipe = Math.min(100, Math.max(0, Math.round(Number(value) * 10) / 10));
    const text = `${Math.round(this.wipe)}% original, ${Math.round(100 - this.wipe)}% enhanced`;
    for (const handle of [this.handle, this.stillHandle]) {
      handle.style.left = `${this.wipe}%`;
      handle.setAttribute('aria-valuenow', String(Math.round(this.wipe)));
      handle.setAttribute('aria-valuetext', text);
    }
    this.topLayer.style.clipPath = `inset(0 0 0 ${this.wipe}%)`;
    this.el.dataset.wipe = String(this.wipe);
    this.applyStillClip();
  }

  bindWipe() {
    const dragWipe = (surface, handleOnly) => {
      surface.addEventListener('pointerdown', (event) => {
        if (event.button !== 0) return;
        if (handleOnly && !event.target.closest('.wipe-handle')) return;
        event.preventDefault();
        const handle = handleOnly ? this.stillHandle : this.handle;
        handle.focus({ preventScroll: true });
        const rectOf = () => (handleOnly ? this.viewport : surface).getBoundingClientRect();
        const move = (e) => {
          const rect = rectOf();
          const width = handleOnly ? this.viewport.clientWidth : rect.width;
          this.setWipe(((e.clientX - rect.left) / width) * 100);
        };
        move(event);
        surface.setPointerCapture(event.pointerId);
        const up = () => {
          surface.removeEventListener('pointermove', move);
          surface.removeEventListener('pointerup', up);
          surface.removeEventListener('pointercancel', up);
        };
        surface.addEventListener('pointermove', move);
        surface.addEventListener('pointerup', up);
        surface.addEventListener('pointercancel', up);
      });
    };
    dragWipe(this.frame, false);
    dragWipe(this.stillHandle, true);
  }

  // ---- Still frame ----------------------------------------------------------------------------------

  async setMode(mode) {
    this.mode = mode;
    this.el.dataset.mode = mode;
    const still = mode === 'still';
    this.modeVideo.setAttribute('aria-pressed', String(!still));
    this.modeStill.setAttribute('aria-pressed', String(still));
    this.frame.hidden = still;
    this.stillWrap.hidden = !still;
    this.stillTools.hidden = !still;
    if (still) {
      this.pause();
      await this.captureStill();
      if (!this.stillCentered && this.mode === 'still') {
        // First look at this result: start in the middle of the frame.
        const vp = this.viewport;
        vp.scrollLeft = (vp.scrollWidth - vp.clientWidth) / 2;
        vp.scrollTop = (vp.scrollHeight - vp.clientHeight) / 2;
        this.stillCentered = true;
        this.applyStillClip();
      }
    } else {
      this.el.dataset.still = 'none';
    }
  }

  async captureStill() {
    const token = ++this.stillToken;
    const { original, enhanced } = this;
    const t = enhanced.currentTime;
    await Promise.all([seekVideo(enhanced, t), seekVideo(original, t + this.offset)]);
    if (token !== this.stillToken || this.mode !== 'still') return;
    const w = enhanced.videoWidth;
    const hgt = enhanced.videoHeight;
    if (!w || !hgt) return;
    for (const canvas of [this.canvasOriginal, this.canvasEnhanced]) {
      if (canvas.width !== w) canvas.width = w;
      if (canvas.height !== hgt) canvas.height = hgt;
    }
    this.canvasEnhanced.getContext('2d').drawImage(enhanced, 0, 0, w, hgt);
    this.drawOriginal();
    this.layoutStill();
    this.el.dataset.still = `${w}x${hgt}@${t.toFixed(3)}`;
    this.dispatchEvent(new Event('still'));
  }

  drawOriginal() {
    const { width, height } = this.canvasOriginal;
    if (!width || this.original.readyState < 2) return;
    const ctx = this.canvasOriginal.getContext('2d');
    ctx.imageSmoothingEnabled = this.smooth;
    ctx.imageSmoothingQuality = 'high';
    ctx.clearRect(0, 0, width, height);
    ctx.drawImage(this.original, 0, 0, width, height);
  }

  setSmooth(smooth) {
    this.smooth = smooth;
    this.scaleNearest.setAttribute('aria-pressed', String(!smooth));
    this.scaleSmooth.setAttribute('aria-pressed', String(smooth));
    this.drawOriginal();
  }

  /** CSS pixels per image pixel at the current zoom (1:1 means one image pixel per device pixel). */
  scaleFactor() {
    const w = this.canvasOriginal.width || 1;
    const hgt = this.canvasOriginal.height || 1;
    if (this.zoom === 'fit') return Math.min(this.viewport.clientWidth / w, this.viewport.clientHeight / hgt) || 1;
    return this.zoom / (window.devicePixelRatio || 1);
  }

  setZoom(zoom) {
    const vp = this.viewport;
    // Keep the point in the centre of the view where it is.
    const cx = (vp.scrollLeft + vp.clientWidth / 2 - this.stage.offsetLeft) / (this.stage.offsetWidth || 1);
    const cy = (vp.scrollTop + vp.clientHeight / 2 - this.stage.offsetTop) / (this.stage.offsetHeight || 1);
    this.zoom = zoom;
    for (const btn of this.zoomButtons) btn.setAttribute('aria-pressed', String(btn.dataset.zoom === String(zoom)));
    this.layoutStill();
    vp.scrollLeft = cx * this.stage.offsetWidth - vp.clientWidth / 2 + this.stage.offsetLeft;
    vp.scrollTop = cy * this.stage.offsetHeight - vp.clientHeight / 2 + this.stage.offsetTop;
    this.applyStillClip();
  }

  layoutStill() {
    if (this.mode !== 'still' || !this.canvasOriginal.width) return;
    const scale = this.scaleFactor();
    const width = `${this.canvasOriginal.width * scale}px`;
    const height = `${this.canvasOriginal.height * scale}px`;
    this.stage.style.width = width;
    this.stage.style.height = height;
    this.stage.classList.toggle('is-pixelated', this.zoom !== 'fit' && this.zoom > 1);
    this.el.dataset.zoom = String(this.zoom);
    this.applyStillClip();
  }

  /** In still mode the divider stays where it is on screen while the image pans under it. */
  applyStillClip() {
    if (this.mode !== 'still') return;
    const vp = this.viewport;
    const x = vp.scrollLeft + (this.wipe / 100) * vp.clientWidth - this.stage.offsetLeft;
    const clamped = Math.max(0, Math.min(this.stage.offsetWidth, x));
    this.canvasEnhanced.style.clipPath = `inset(0 0 0 ${clamped}px)`;
    this.stillHandle.style.left = `${(this.wipe / 100) * vp.clientWidth}px`;
  }

  bindPan() {
    const vp = this.viewport;
    vp.addEventListener('scroll', () => this.applyStillClip(), { passive: true });
    vp.addEventListener('pointerdown', (event) => {
      if (event.button !== 0) return;
      const startX = event.clientX;
      const startY = event.clientY;
      const left = vp.scrollLeft;
      const top = vp.scrollTop;
      vp.setPointerCapture(event.pointerId);
      vp.classList.add('is-panning');
      const move = (e) => {
        vp.scrollLeft = left - (e.clientX - startX);
        vp.scrollTop = top - (e.clientY - startY);
      };
      const up = () => {
        vp.classList.remove('is-panning');
        vp.removeEventListener('pointermove', move);
        vp.removeEventListener('pointerup', up);
        vp.removeEventListener('pointercancel', up);
      };
      vp.addEventListener('pointermove', move);
      vp.addEventListener('pointerup', up);
      vp.addEventListener('pointercancel', up);
    });
  }
}
