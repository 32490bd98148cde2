/**
 * The few DOM helpers the owner app needs (no UI library): build elements, show a screen (its
 * heading gets the focus, so a screen reader announces it and the keyboard starts there), say
 * what is going on in the status line, and run an action with its button busy and its error shown.
 */
import { isMeshError } from '../mesh/errors.js';

type Child = Node | string | null | undefined | false;
type Props = Record<string, string | number | boolean | null | undefined | ((e: Event) => void)>;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, props: Props = {}, ...kids: (Child | Child[])[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (typeof v === 'function') {
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      continue;
    }
    if (k === 'class') el.className = String(v);
    else if (k === 'for') (el as HTMLLabelElement).htmlFor = String(v);
    else if (k === 'value' || k === 'checked' || k === 'disabled' || k === 'hidden') (el as unknown as Record<string, unknown>)[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid);
  }
  return el;
}

const main = (): HTMLElement => document.getElementById('app') as HTMLElement;

/** Replace the screen: a heading (focused) and its content. */
export function show(title: string, ...content: (Child | Child[])[]): void {
  const m = main();
  const h1 = h('h1', { tabindex: '-1' }, title);
  m.replaceChildren(h1, ...content.flat().filter((x): x is Node | string => x !== null && x !== undefined && x !== false));
  document.title = `${title} - Mesh owner`;
  status('');
  h1.focus();
  window.scrollTo(0, 0);
}

export function status(text: string): void {
  const s = document.getElementById('status');
  if (s !== null) s.textContent = text;
}

/** A text of an error for a person: the MeshError's message (it says what to do), else the error. */
export function errorText(e: unknown): string {
  if (isMeshError(e)) return e.message.replace(/^portal: /, 'The portal says: ');
  return e instanceof Error ? e.message : String(e);
}

/** A labelled field: its label, an optional hint, the control. */
export function field(id: string, label: string, control: HTMLElement, hint?: string): HTMLElement {
  control.id = id;
  if (hint !== undefined) control.setAttribute('aria-describedby', `${id}-hint`);
  return h('div', {}, h('label', { for: id }, label), hint !== undefined ? h('p', { class: 'hint', id: `${id}-hint` }, hint) : null, control);
}

/**
 * A form whose submit runs `action` once at a time: the button is busy, the error (if any) is
 * shown under the form in an alert, and nothing is submitted while a field is invalid.
 */
export function form(props: { id?: string; submit: string; action: (f: HTMLFormElement) => Promise<void>; busy?: string }, ...fields: (Child | Child[])[]): HTMLFormElement {
  const err = h('p', { class: 'error', role: 'alert' });
  const button = h('button', { type: 'submit' }, props.submit);
  const f = h('form', { ...(props.id !== undefined ? { id: props.id } : {}), novalidate: true }, ...fields, button, err);
  const check = (): void => {
    button.disabled = !f.checkValidity();
  };
  f.addEventListener('input', check);
  f.addEventListener('change', check);
  queueMicrotask(check);
  f.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (!f.checkValidity()) {
      f.reportValidity();
      return;
    }
    err.textContent = '';
    button.disabled = true;
    const was = button.textContent;
    button.textContent = props.busy ?? 'Working...';
    f.setAttribute('aria-busy', 'true');
    props.action(f).then(
      () => {
        button.textContent = was;
        f.removeAttribute('aria-busy');
        check();
      },
      (e: unknown) => {
        button.textContent = was;
        f.removeAttribute('aria-busy');
        err.textContent = errorText(e);
        check();
      },
    );
  });
  return f;
}

export function value(f: HTMLFormElement, name: string): string {
  const el = f.elements.namedItem(name);
  return el instanceof HTMLInputElement || el instanceof HTMLSelectElement || el instanceof HTMLTextAreaElement ? el.value.trim() : '';
}

export function button(text: string, onclick: () => void, cls?: string): HTMLButtonElement {
  return h('button', { type: 'button', onclick, ...(cls !== undefined ? { class: cls } : {}) }, text);
}

export function link(text: string, onclick: () => void): HTMLAnchorElement {
  return h('a', {
    href: '#',
    onclick: (e: Event) => {
      e.preventDefault();
      onclick();
    },
  }, text);
}
