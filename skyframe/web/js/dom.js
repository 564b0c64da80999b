// Tiny DOM helpers: element builder, icons, toasts.

/**
 * h('button.btn', {type: 'button', dataset: {testid: 'x'}, onclick}, 'Label', childNode)
 * The tag may carry classes after dots. `attrs` keys starting with "on" become listeners;
 * `dataset` and `style` objects are merged; `false`/`null` attribute values are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const [name, ...classes] = tag.split('.');
  const el = document.createElement(name);
  if (classes.length) el.className = classes.join(' ');
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key === 'style' && typeof value === 'object') Object.assign(el.style, value);
    else if (key === 'class') el.className = [el.className, value].filter(Boolean).join(' ');
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key in el && typeof value !== 'string') el[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** An icon from the sprite in index.html, hidden from assistive technology. */
export function icon(name, extraClass = '') {
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('class', `icon ${extraClass}`.trim());
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  const use = document.createElementNS(SVG_NS, 'use');
  use.setAttribute('href', `#i-${name}`);
  svg.append(use);
  return svg;
}

/** Swap the icon inside a button (keeps the button, so focus stays put). */
export function setIcon(svg, name) {
  svg.querySelector('use')?.setAttribute('href', `#i-${name}`);
}

/** A short status message in the corner; also announced by screen readers (role=status region). */
export function toast(message, { kind = 'info', timeout = 5000 } = {}) {
  const root = document.getElementById('toasts');
  if (!root) return;
  const item = h(
    'div.toast',
    { class: `toast-${kind}`, dataset: { testid: 'toast' } },
    icon(kind === 'error' ? 'alert' : kind === 'success' ? 'check' : 'sparkle'),
    h('span', {}, message),
  );
  root.append(item);
  while (root.children.length > 4) root.firstElementChild.remove();
  setTimeout(() => {
    item.classList.add('toast-leave');
    setTimeout(() => item.remove(), 250);
  }, timeout);
}

/** A progress bar with role=progressbar; returns {el, set(percent, text)}. */
export function progressBar(label, testid) {
  const fill = h('div.progress-fill');
  const el = h(
    'div.progress',
    { role: 'progressbar', 'aria-label': label, 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': '0', dataset: { testid } },
    fill,
  );
  return {
    el,
    set(percent, valueText) {
      const p = Math.min(100, Math.max(0, Number(percent) || 0));
      fill.style.width = `${p}%`;
      el.setAttribute('aria-valuenow', String(Math.floor(p)));
      if (valueText) el.setAttribute('aria-valuetext', valueText);
      else el.removeAttribute('aria-valuetext');
    },
    indeterminate(on) {
      el.classList.toggle('progress-indeterminate', on);
    },
  };
}
