// A browser-like global scope for tests of lumino widgets: lumino reads `navigator` and
// `document` when it loads, so this module is imported before anything that pulls it in.
import { JSDOM } from 'jsdom';

const dom = new JSDOM('<!doctype html><body></body>', { url: 'http://localhost:8888/lab' });
const g = globalThis as any;
// jsdom has no media queries; JupyterLab's web components ask for `forced-colors` when they load.
if (!(dom.window as any).matchMedia) {
  (dom.window as any).matchMedia = (media: string) => ({
    matches: false, media, onchange: null, addListener() {}, removeListener() {},
    addEventListener() {}, removeEventListener() {}, dispatchEvent: () => false
  });
}
for (const name of ['window', 'document', 'navigator', 'HTMLElement', 'Element', 'Node', 'Event',
                    'KeyboardEvent', 'MouseEvent', 'requestAnimationFrame', 'cancelAnimationFrame',
                    'getComputedStyle', 'MutationObserver', 'WebSocket', 'customElements', 'matchMedia',
                    // Every DOM class (Document, CSSStyleSheet, ShadowRoot, …): JupyterLab's web
                    // components (via @jupyterlab/ui-components) read them as they load.
                    ...Object.getOwnPropertyNames(dom.window).filter(name => /^[A-Z]/.test(name))]) {
  if (!(name in g) || name === 'navigator') {
    Object.defineProperty(g, name, { value: name === 'window' ? dom.window : (dom.window as any)[name], configurable: true, writable: true });
  }
}
// jsdom has no drag events; lumino's drag-and-drop subclasses DragEvent when it loads.
if (!g.DragEvent) {
  g.DragEvent = class DragEvent extends (dom.window as any).MouseEvent {};
}
if (!g.requestAnimationFrame) {
  g.requestAnimationFrame = (fn: () => void) => setTimeout(fn, 0);
  g.cancelAnimationFrame = (id: any) => clearTimeout(id);
}
export const domWindow = dom.window;
export const doc = dom.window.document;
