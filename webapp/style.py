"""The app's own CSS (passed to `gr.mount_gradio_app`) and the small standalone pages' CSS.

Gradio's theme draws form inputs of raw HTML (the Sign in form) with no border on white, so they are
invisible; the result card needs its colours; on a phone forms are one column."""

FORM_CSS = """
.cifake-form label { display: block; font-weight: 600; margin: .2rem 0; }
.cifake-form input:not([type=hidden]) { display: block; box-sizing: border-box; width: 100%; max-width: 24rem;
  padding: .55rem .7rem; margin: .25rem 0 .9rem; border: 1px solid #6b7280; border-radius: 6px;
  background: #fff; color: #111827; font-size: 1rem; }
.cifake-form input:focus { outline: 2px solid #2563eb; outline-offset: 1px; }
.cifake-form button, .cifake-button { padding: .55rem 1.3rem; border: 0; border-radius: 6px; background: #2563eb;
  color: #fff; font-weight: 600; font-size: 1rem; cursor: pointer; }
a.cifake-button { display: inline-block; text-decoration: none; padding: .35rem .9rem; margin: .1rem .2rem; }
a.cifake-button.secondary { background: #e5e7eb; color: #111827; }
.cifake-error { color: #b91c1c; font-weight: 600; }
.field-error, .field-error p { color: #b91c1c; font-size: .9rem; margin: 0; }
.cifake-hint { color: #4b5563; font-size: .9rem; }
"""

APP_CSS = FORM_CSS + """
.result-card { display: flex; gap: 1rem; align-items: center; padding: 1rem; border: 2px solid #9ca3af;
  border-radius: 12px; background: #f9fafb; color: #111827; }
.result-card.tone-fake { border-color: #dc2626; background: #fef2f2; }
.result-card.tone-real { border-color: #16a34a; background: #f0fdf4; }
.result-picture { width: 160px; max-width: 40%; height: auto; border-radius: 8px; image-rendering: pixelated; }
.result-text { flex: 1; min-width: 0; }
.verdict-label { font-size: 1.9rem; font-weight: 800; line-height: 1.2; }
.tone-fake .verdict-label { color: #b91c1c; }
.tone-real .verdict-label { color: #15803d; }
.tone-uncertain .verdict-label { color: #374151; }
.verdict-confidence { font-size: 1.15rem; font-weight: 600; margin-top: .2rem; }
.verdict-sentence { margin: .5rem 0 .2rem; }
.verdict-file { color: #6b7280; font-size: .85rem; margin: 0; overflow-wrap: anywhere; }
#whoami a, #whoami button { margin-left: .5rem; }
.history-gallery { display: flex; flex-wrap: wrap; gap: .6rem; }
.history-item { margin: 0; width: 96px; text-align: center; font-size: .75rem; overflow-wrap: anywhere; }
.history-item img { width: 96px; height: 96px; border-radius: 6px; image-rendering: pixelated; }
.admin-picture { max-height: 128px; border-radius: 8px; }
/* the examples' grid: Gradio sizes its columns in fixed pixels, which pushed phones sideways */
#examples .grid-container { grid-template-columns: repeat(4, minmax(0, 1fr)) !important; }
@media (max-width: 640px) {
  .result-card { flex-direction: column; align-items: flex-start; }
  .result-picture { max-width: 60%; }
  #home-row, .cifake-columns { flex-direction: column !important; }
}
"""
