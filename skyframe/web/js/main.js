// SkyFrame web app entry point: wires the views together and keeps the selection in the URL hash.

import { jobsApi, uploadsApi } from './api.js';
import { initAuth } from './auth.js';
import { CompareView } from './compare.js';
import { toast } from './dom.js';
import { EnhanceForm } from './enhance.js';
import { JobList } from './jobs.js';
import { Library, renderDetails } from './library.js';
import { UploadView } from './upload-view.js';

const $ = (id) => document.getElementById(id);

const els = {
  viewer: $('viewer'),
  viewerTitle: $('viewer-title'),
  viewerEmpty: $('viewer-empty'),
  playerWrap: $('player'),
  player: $('original-player'),
  compareRoot: $('compare-root'),
  compareClose: $('compare-close'),
  details: $('details'),
  detailsName: $('details-name'),
  detailsMeta: $('details-meta'),
  downloadOriginal: $('download-original'),
  deleteUpload: $('delete-upload'),
  libraryEmpty: $('library-empty'),
};

const state = {
  upload: null,
  compareJobId: null,
  startedJobs: new Set(), // jobs started from this page: open the compare view when they finish
};

const narrow = window.matchMedia('(max-width: 800px)');

const library = new Library({
  grid: $('library-grid'),
  empty: els.libraryEmpty,
  count: $('library-count'),
  onSelect: (upload) => selectUpload(upload.uploadId, { reveal: true }),
});

const uploadView = new UploadView({
  dropzone: $('dropzone'),
  input: $('file-input'),
  list: $('upload-queue'),
  section: $('uploads-section'),
  onUploaded: (upload) => {
    library.upsert(upload);
    const busy = uploadView.queue.tasks.some((task) => task.active || task.state === 'queued');
    if (!state.upload || !busy) selectUpload(upload.uploadId);
  },
});

const enhance = new EnhanceForm({
  getPlayerTime: () => els.player.currentTime || 0,
  onSubmit: async (request) => {
    const job = await jobsApi.create(request);
    state.startedJobs.add(job.jobId);
    jobs.add(job);
    toast('Enhancement started', { kind: 'info' });
  },
});

const jobs = new JobList({
  list: $('job-list'),
  empty: $('jobs-empty'),
  section: $('jobs'),
  modelByKey: (key) => enhance.models.find((model) => model.key === key) ?? null,
  onCompare: (job) => openCompare(job, { reveal: true }),
  onUpdate: (job, previous) => {
    if (previous?.status === job.status) return;
    if (job.status === 'completed') {
      toast('Enhancement finished', { kind: 'success' });
      if (state.startedJobs.has(job.jobId) && !state.compareJobId) openCompare(job);
    } else if (job.status === 'failed') {
      toast(`Enhancement failed: ${job.error || 'unknown error'}`, { kind: 'error', timeout: 8000 });
    }
  },
});

const compare = new CompareView(els.compareRoot);

// ---- Selection ---------------------------------------------------------------------------------------

async function selectUpload(uploadId, { reveal = false, compareJobId = null } = {}) {
  let upload = library.get(uploadId);
  if (!upload) {
    try {
      upload = await uploadsApi.get(uploadId);
    } catch {
      return;
    }
  }
  if (state.upload?.uploadId !== uploadId) {
    closeCompare({ updateHash: false });
    state.upload = upload;
    library.select(uploadId);
    renderDetails({ name: els.detailsName, meta: els.detailsMeta, download: els.downloadOriginal }, upload);
    els.details.hidden = false;
    els.viewerEmpty.hidden = true;
    els.playerWrap.hidden = false;
    els.viewerTitle.textContent = upload.filename;
    els.player.src = upload.downloadUrl || uploadsApi.downloadUrl(uploadId);
    enhance.setUpload(upload);
    await jobs.show(upload);
  }
  if (compareJobId) {
    const job = jobs.get(compareJobId);
    if (job?.status === 'completed') openCompare(job);
  }
  writeHash();
  if (reveal && narrow.matches) els.viewer.scrollIntoView({ behavior: 'smooth', block: 'start' });
}

function clearSelection() {
  closeCompare({ updateHash: false });
  state.upload = null;
  library.select(null);
  els.details.hidden = true;
  els.viewerEmpty.hidden = false;
  els.playerWrap.hidden = true;
  els.player.removeAttribute('src');
  els.player.load();
  els.viewerTitle.textContent = 'Viewer';
  enhance.setUpload(null);
  jobs.show(null);
  writeHash();
}

function openCompare(job, { reveal = false } = {}) {
  if (!state.upload || job.uploadId !== state.upload.uploadId) return;
  if (state.compareJobId !== job.jobId) {
    els.player.pause();
    compare.open(state.upload, job, job.downloadUrl || jobsApi.downloadUrl(job.jobId));
    state.compareJobId = job.jobId;
  }
  els.playerWrap.hidden = true;
  els.compareRoot.hidden = false;
  els.compareClose.hidden = false;
  const options = job.options ?? {};
  const size = options.scale ? `${options.scale}×` : (options.resolution ?? '').toUpperCase();
  els.viewerTitle.textContent = `Compare · ${state.upload.filename}${size ? ` · ${size}` : ''}`;
  writeHash();
  if (reveal && narrow.matches) els.viewer.scrollIntoView({ behavior: 'smooth', block: 'start' });
}

function closeCompare({ updateHash = true } = {}) {
  if (!state.compareJobId) return;
  compare.close();
  state.compareJobId = null;
  els.compareRoot.hidden = true;
  els.compareClose.hidden = true;
  if (state.upload) {
    els.playerWrap.hidden = false;
    els.viewerTitle.textContent = state.upload.filename;
  }
  if (updateHash) writeHash();
}

// ---- URL hash: #upload=<id>&compare=<jobId> ------------------------------------------------------------

function writeHash() {
  const params = new URLSearchParams();
  if (state.upload) params.set('upload', state.upload.uploadId);
  if (state.compareJobId) params.set('compare', state.compareJobId);
  const hash = params.toString();
  const url = `${location.pathname}${location.search}${hash ? `#${hash}` : ''}`;
  if (url !== `${location.pathname}${location.search}${location.hash}`) history.replaceState(null, '', url);
}

function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  return { uploadId: params.get('upload'), compareJobId: params.get('compare') };
}

// ---- Other wiring ------------------------------------------------------------------------------------

$('upload-button').addEventListener('click', () => $('file-input').click());
els.compareClose.addEventListener('click', () => {
  closeCompare();
  els.player.focus();
});
$('library-refresh').addEventListener('click', () => refreshLibrary());
els.player.addEventListener('timeupdate', () => enhance.updatePreviewHelp());
els.player.addEventListener('seeked', () => enhance.updatePreviewHelp());

els.deleteUpload.addEventListener('click', async () => {
  const upload = state.upload;
  if (!upload) return;
  if (!window.confirm(`Delete “${upload.filename}” and its enhanced versions?`)) return;
  try {
    await uploadsApi.remove(upload.uploadId);
  } catch (error) {
    toast(`Could not delete: ${error.message}`, { kind: 'error' });
    return;
  }
  library.remove(upload.uploadId);
  clearSelection();
  toast(`Deleted ${upload.filename}`);
});

window.addEventListener('hashchange', () => {
  const { uploadId, compareJobId } = readHash();
  if (uploadId && uploadId !== state.upload?.uploadId) selectUpload(uploadId, { compareJobId });
  else if (uploadId && compareJobId && compareJobId !== state.compareJobId) selectUpload(uploadId, { compareJobId });
});

async function refreshLibrary() {
  try {
    await library.refresh();
    if (state.upload && !library.get(state.upload.uploadId)) clearSelection();
    else if (state.upload) library.select(state.upload.uploadId);
  } catch (error) {
    els.libraryEmpty.textContent = `Could not load the library: ${error.message}`;
    els.libraryEmpty.hidden = false;
  }
}

async function start() {
  document.documentElement.classList.add('js');
  await Promise.all([enhance.loadModels(), refreshLibrary()]);
  uploadView.restorePending();
  const { uploadId, compareJobId } = readHash();
  if (uploadId) await selectUpload(uploadId, { compareJobId });
  document.body.dataset.ready = 'true';
}

initAuth(); // with accounts on: the username and "Log out" in the top bar
start();
