// Formatting helpers shared by the views. Pure functions, no DOM.

const UNITS = ['B', 'KB', 'MB', 'GB', 'TB'];

/** 1536 -> "1.5 KB" (decimal-free for bytes, one decimal below 100). */
export function formatBytes(bytes) {
  if (!Number.isFinite(bytes) || bytes < 0) return '–';
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = unit === 0 || value >= 100 ? 0 : 1;
  return `${value.toFixed(digits)} ${UNITS[unit]}`;
}

export function formatSpeed(bytesPerSecond) {
  if (!Number.isFinite(bytesPerSecond) || bytesPerSecond <= 0) return '–';
  return `${formatBytes(bytesPerSecond)}/s`;
}

/** 29.97002997 -> "29.97", 30 -> "30". */
export function formatFps(fps) {
  if (!Number.isFinite(fps) || fps <= 0) return '–';
  return `${Number(fps.toFixed(2))}`;
}

/** Clip length: "5.0 s" below a minute, then "1:05" / "1:02:05". */
export function formatDuration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return '–';
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  return formatClock(seconds);
}

/** "m:ss" or "h:mm:ss". */
export function formatClock(seconds) {
  const total = Math.max(0, Math.floor(seconds));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

/** Player time with tenths: "0:03.4". */
export function formatTimecode(seconds) {
  if (!Number.isFinite(seconds)) return '0:00.0';
  const tenths = Math.floor((Math.max(0, seconds) % 1) * 10);
  return `${formatClock(seconds)}.${tenths}`;
}

/** Remaining time: "12 s left", "3 min left", "1 h 5 min left". */
export function formatEta(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return '';
  if (seconds < 1) return 'almost done';
  if (seconds < 60) return `${Math.ceil(seconds)} s left`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} min left`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min left`;
}

export function formatResolution(media) {
  if (!media) return '–';
  const w = media.displayWidth || media.width;
  const h = media.displayHeight || media.height;
  return w && h ? `${w}×${h}` : '–';
}

export function formatBitRate(bitsPerSecond) {
  if (!Number.isFinite(bitsPerSecond) || bitsPerSecond <= 0) return '–';
  if (bitsPerSecond >= 1e6) return `${(bitsPerSecond / 1e6).toFixed(1)} Mbit/s`;
  return `${Math.round(bitsPerSecond / 1e3)} kbit/s`;
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const shortDateFormat = new Intl.DateTimeFormat(undefined, {
  month: 'short',
  day: 'numeric',
  hour: 'numeric',
  minute: '2-digit',
});

export function formatDate(iso, { short = false } = {}) {
  if (!iso) return '–';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return '–';
  return (short ? shortDateFormat : dateFormat).format(date);
}

export function formatPercent(value) {
  if (!Number.isFinite(value)) return '0%';
  return `${Math.floor(Math.min(100, Math.max(0, value)))}%`;
}

export const RESOLUTION_LABELS = {
  hd: 'HD 720p',
  fhd: 'Full HD 1080p',
  '2k': '2K 1440p',
  '4k': '4K 2160p',
};

export const RESOLUTION_SHORT = { hd: '720p', fhd: '1080p', '2k': '1440p', '4k': '4K' };

const RESOLUTION_BOXES = { hd: [1280, 720], fhd: [1920, 1080], '2k': [2560, 1440], '4k': [3840, 2160] };

const even = (value) => Math.max(2, Math.round(value / 2) * 2);

/** Output frame size for a scale or a resolution key (same rule as the server's catalogue). */
export function targetSize(media, { scale, resolution }) {
  const w = media?.displayWidth || media?.width;
  const h = media?.displayHeight || media?.height;
  if (!w || !h) return null;
  let factor;
  if (resolution && RESOLUTION_BOXES[resolution]) {
    let [boxW, boxH] = RESOLUTION_BOXES[resolution];
    if (h > w) [boxW, boxH] = [boxH, boxW];
    factor = Math.min(boxW / w, boxH / h);
  } else {
    factor = scale || 4;
  }
  return [even(w * factor), even(h * factor)];
}

export const STAGE_LABELS = {
  queued: 'Queued',
  pending: 'Waiting for a worker',
  starting: 'Starting',
  probing: 'Reading the clip',
  downloading: 'Preparing input',
  uploading: 'Sending to the provider',
  loading_model: 'Loading the model',
  enhancing: 'Enhancing frames',
  upscaling: 'Upscaling frames',
  processing: 'Processing',
  encoding: 'Encoding video',
  muxing: 'Adding audio',
  finalizing: 'Finishing',
  done: 'Done',
};

/** "loading_model" -> "Loading the model"; unknown stages are humanised. */
export function formatStage(stage) {
  if (!stage) return '';
  const key = String(stage).toLowerCase();
  if (STAGE_LABELS[key]) return STAGE_LABELS[key];
  const text = key.replace(/[_-]+/g, ' ');
  return text.charAt(0).toUpperCase() + text.slice(1);
}
