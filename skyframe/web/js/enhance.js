// The Enhance form: model picker (from /api/models), output size, quality, preview segment, AI Enhance.

import { jobsApi } from './api.js';
import { h } from './dom.js';
import { RESOLUTION_LABELS, RESOLUTION_SHORT, formatTimecode, targetSize } from './format.js';

/** Length of a preview segment in seconds: `?preview=1` or `localStorage.skyframePreviewSeconds`, default 3. */
export function previewSeconds() {
  const fromQuery = new URLSearchParams(location.search).get('preview');
  let fromStorage = null;
  try {
    fromStorage = localStorage.getItem('skyframePreviewSeconds');
  } catch {
    // ignore
  }
  const value = parseFloat(fromQuery ?? fromStorage ?? '');
  return Number.isFinite(value) && value > 0 ? Math.min(value, 60) : 3;
}

function splitTitle(title) {
  const match = /^(.*?)\s*\((.*)\)\s*$/.exec(title || '');
  return match ? [match[1], match[2]] : [title, ''];
}

export class EnhanceForm {
  /**
   * @param {object} opts
   * @param {() => number} opts.getPlayerTime  current time of the original player (preview start)
   * @param {(request: object) => Promise<void>} opts.onSubmit  creates the job; throws ApiError on refusal
   */
  constructor({ getPlayerTime, onSubmit }) {
    const $ = (id) => document.getElementById(id);
    this.form = $('enhance-form');
    this.modelList = $('model-list');
    this.hint = $('model-hint');
    this.sizeField = $('size-field');
    this.sizeOptions = $('size-options');
    this.crf = $('crf-input');
    this.crfValue = $('crf-value');
    this.codec = $('codec-select');
    this.preview = $('preview-toggle');
    this.previewLabel = $('preview-label');
    this.error = $('enhance-error');
    this.button = $('enhance-button');
    this.help = $('enhance-help');
    this.getPlayerTime = getPlayerTime;
    this.onSubmit = onSubmit;

    this.models = [];
    this.modelKey = null;
    this.sizeValue = null;
    this.upload = null;
    this.busy = false;
    this.previewLength = previewSeconds();
    this.previewLabel.textContent = `Preview (${Number(this.previewLength.toFixed(1))} s)`;
    this.form.dataset.previewSeconds = String(this.previewLength);

    this.crf.addEventListener('input', () => {
      this.crfValue.textContent = this.crf.value;
    });
    this.modelList.addEventListener('change', (event) => {
      if (event.target.name === 'model') this.selectModel(event.target.value);
    });
    this.preview.addEventListener('change', () => this.updatePreviewHelp());
    this.sizeOptions.addEventListener('change', (event) => {
      if (event.target.name === 'size') this.sizeValue = event.target.value;
    });
    this.form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.submit();
    });
  }

  async loadModels() {
    try {
      const { models } = await jobsApi.models();
      this.models = models ?? [];
    } catch (error) {
      this.modelList.replaceChildren(
        h('p.form-error', { role: 'alert' }, `Could not load models: ${error.message}`),
        h('button.btn.btn-secondary.btn-small', { type: 'button', onclick: () => this.loadModels() }, 'Try again'),
      );
      return;
    }
    this.renderModels();
    const preferred =
      this.models.find((m) => m.isDefault && m.available) ?? this.models.find((m) => m.available) ?? null;
    this.selectModel(preferred?.key ?? null);
  }

  renderModels() {
    if (!this.models.length) {
      this.modelList.replaceChildren(h('p.muted', {}, 'No models are configured on this server.'));
      return;
    }
    this.modelList.replaceChildren(
      ...this.models.map((model) => {
        const [title, subtitle] = splitTitle(model.title);
        const id = `model-${model.key}`;
        const describedBy = [`${id}-sub`, model.available ? null : `${id}-reason`].filter(Boolean).join(' ');
        const tags = [
          h('span.tag', {}, model.provider === 'local' ? 'On this machine' : 'Cloud'),
          model.paid ? h('span.tag.tag-paid', {}, 'Paid') : null,
          model.isDefault ? h('span.tag.tag-default', {}, 'Default') : null,
        ];
        return h(
          'label.model-option',
          {
            class: model.available ? '' : 'is-disabled',
            dataset: { testid: 'model-option', model: model.key, available: String(!!model.available) },
          },
          h('input', {
            type: 'radio',
            name: 'model',
            value: model.key,
            id,
            disabled: !model.available,
            'aria-describedby': describedBy,
            dataset: { testid: `model-radio-${model.key}` },
          }),
          h(
            'span.model-body',
            {},
            h('span.model-title', {}, title),
            subtitle ? h('span.model-sub', { id: `${id}-sub` }, subtitle) : h('span', { id: `${id}-sub` }),
            h('span.model-tags', {}, tags),
            model.available
              ? null
              : h(
                  'span.model-reason',
                  { id: `${id}-reason`, dataset: { testid: 'model-unavailable-reason' } },
                  `Unavailable: ${model.unavailableReason || 'not configured on this server.'}`,
                ),
          ),
        );
      }),
    );
  }

  get model() {
    return this.models.find((m) => m.key === this.modelKey) ?? null;
  }

  selectModel(key) {
    const model = this.models.find((m) => m.key === key && m.available) ?? null;
    this.modelKey = model?.key ?? null;
    for (const input of this.modelList.querySelectorAll('input[name="model"]')) {
      input.checked = input.value === this.modelKey;
      input.closest('.model-option')?.classList.toggle('is-checked', input.checked);
    }
    this.hint.textContent = model?.hint ?? '';
    this.hint.hidden = !model?.hint;
    this.renderSizes();
    this.sync();
  }

  /** Scale and resolution choices for the selected model, with the output size they give. */
  renderSizes() {
    const model = this.model;
    const media = this.upload?.media;
    const choices = [
      ...(model?.scales ?? []).map((scale) => ({ value: `scale:${scale}`, label: `${scale}×`, opts: { scale } })),
      ...(model?.resolutions ?? []).map((res) => ({
        value: `resolution:${res}`,
        label: RESOLUTION_SHORT[res] ?? res.toUpperCase(),
        opts: { resolution: res },
      })),
    ];
    this.sizeField.hidden = choices.length === 0;
    if (!choices.some((choice) => choice.value === this.sizeValue)) {
      // Same default as the server: the largest scale, else the model's default resolution.
      const scales = model?.scales ?? [];
      const resolutions = model?.resolutions ?? [];
      const defaultResolution = resolutions.includes(model?.defaultResolution)
        ? model.defaultResolution
        : resolutions.includes('fhd')
          ? 'fhd'
          : resolutions[0];
      const fallback = scales.length
        ? `scale:${scales[scales.length - 1]}`
        : defaultResolution
          ? `resolution:${defaultResolution}`
          : null;
      this.sizeValue = fallback ?? null;
    }
    this.sizeOptions.replaceChildren(
      ...choices.map((choice) => {
        const size = targetSize(media, choice.opts);
        const id = `size-${choice.value.replace(':', '-')}`;
        return h(
          'label.segment',
          { title: RESOLUTION_LABELS[choice.opts.resolution] ?? `${choice.opts.scale}× the original size` },
          h('input', {
            type: 'radio',
            name: 'size',
            value: choice.value,
            id,
            checked: choice.value === this.sizeValue,
            dataset: { testid: id },
          }),
          h('span.segment-label', {}, choice.label),
          size ? h('span.segment-sub', {}, `${size[0]}×${size[1]}`) : null,
        );
      }),
    );
  }

  setUpload(upload) {
    this.upload = upload;
    this.error.hidden = true;
    this.renderSizes();
    this.updatePreviewHelp();
    this.sync();
  }

  sync() {
    const model = this.model;
    let help = '';
    if (!this.upload) help = 'Select a clip first.';
    else if (!this.models.length) help = 'No models available.';
    else if (!model) help = 'Choose an available model.';
    else if (model.paid) help = 'This model runs on a paid cloud service.';
    this.help.textContent = help;
    this.help.hidden = !help;
    this.button.disabled = this.busy || !this.upload || !model?.available;
  }

  /** The job request for the current choices. */
  request() {
    const model = this.model;
    const options = { crf: Number(this.crf.value), codec: this.codec.value };
    if (this.sizeValue) {
      const [kind, value] = this.sizeValue.split(':');
      options[kind] = kind === 'scale' ? Number(value) : value;
    }
    if (this.preview.checked) {
      const duration = this.upload?.media?.duration ?? 0;
      const length = this.previewLength;
      const latest = Math.max(0, duration - length);
      const start = Math.min(Math.max(0, this.getPlayerTime?.() ?? 0), latest);
      options.start = Math.floor(start * 10) / 10;
      options.duration = duration ? Math.min(length, duration) : length;
    }
    return { uploadId: this.upload.uploadId, model: model.key, options };
  }

  async submit() {
    if (this.button.disabled || !this.model?.available) return;
    this.error.hidden = true;
    this.busy = true;
    this.sync();
    const label = this.button.querySelector('span');
    label.textContent = 'Starting…';
    try {
      const request = this.request();
      await this.onSubmit(request);
    } catch (error) {
      this.error.textContent = error.message || 'Could not start the job.';
      this.error.hidden = false;
    } finally {
      this.busy = false;
      label.textContent = 'AI Enhance';
      this.sync();
    }
  }

  /** Say where the preview segment starts (the player position), while the toggle is on. */
  updatePreviewHelp() {
    const help = document.getElementById('preview-help');
    if (!this.preview.checked || !this.upload) {
      help.textContent = 'Enhance a short segment starting at the player position, to try a model quickly.';
      return;
    }
    const length = Number(this.previewLength.toFixed(1));
    const duration = this.upload.media?.duration ?? 0;
    const start = Math.min(Math.max(0, this.getPlayerTime?.() ?? 0), Math.max(0, duration - length));
    help.textContent = `Enhances ${length} s from ${formatTimecode(start)}. Move the player to pick another start.`;
  }
}
