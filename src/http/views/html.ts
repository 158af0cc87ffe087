// HTML escaped by construction: every interpolation in an `html` template is escaped unless it is
// itself a SafeHtml produced by `html`.
export class SafeHtml {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

const ESC: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;', '`': '&#96;' };
export const escapeHtml = (s: string): string => s.replace(/[&<>"'`]/g, (c) => ESC[c]!);

type Part = SafeHtml | string | number | boolean | null | undefined | Part[];

function render(p: Part): string {
  if (p === null || p === undefined || p === false) return '';
  if (p instanceof SafeHtml) return p.value;
  if (Array.isArray(p)) return p.map(render).join('');
  return escapeHtml(String(p));
}

export function html(strings: TemplateStringsArray, ...values: Part[]): SafeHtml {
  let out = strings[0]!;
  values.forEach((v, i) => {
    out += render(v) + strings[i + 1]!;
  });
  return new SafeHtml(out);
}

export const STYLESHEET = `
*{box-sizing:border-box}body{font:16px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;background:#f4f5f7;color:#1d2330;margin:0;display:flex;min-height:100vh;align-items:center;justify-content:center}
main{background:#fff;border-radius:10px;box-shadow:0 2px 12px rgba(0,0,0,.08);padding:2rem;width:100%;max-width:400px}
h1{font-size:1.3rem;margin:0 0 1rem}label{display:block;margin:.8rem 0 .2rem;font-weight:600;font-size:.9rem}
input[type=email],input[type=password],input[type=text]{width:100%;padding:.6rem;border:1px solid #c5cad3;border-radius:6px;font-size:1rem}
button{margin-top:1.2rem;padding:.65rem 1rem;border:0;border-radius:6px;background:#2451b7;color:#fff;font-size:1rem;cursor:pointer;width:100%}
button.secondary{background:#e6e8ec;color:#1d2330}.row{display:flex;gap:.6rem}.row button{flex:1}
.error{background:#fdecec;color:#8a1c1c;padding:.6rem .8rem;border-radius:6px;margin-bottom:.8rem}
ul{padding-left:1.2rem}.muted{color:#5b6474;font-size:.85rem}
`;

/** A whole page; `lang` is the page language (ui_locales picks it when a translation exists). */
export function page(title: string, body: SafeHtml, lang = 'en', head: SafeHtml | '' = ''): string {
  return html`<!doctype html>
<html lang="${lang}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">${head}
<title>${title}</title><link rel="stylesheet" href="/assets/latchkey.css"></head>
<body><main>${body}</main></body></html>`.value;
}
