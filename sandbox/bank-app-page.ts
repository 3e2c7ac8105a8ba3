/**
 * The bank app page: the customer's CIBA authentication device (CIBA Core §1, "AD"). One
 * self-contained HTML document, no build step; it talks to the JSON routes of bank-app.ts.
 * All request data is inserted with textContent, never as HTML.
 */
export function renderBankAppPage(options: {
  bankName: string;
  customers: { login: string; name: string }[];
}): string {
  const customers = JSON.stringify(options.customers).replace(/</g, '\\u003c');
  const bankName = options.bankName.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover">
<meta name="theme-color" content="#0b5d4b">
<title>${bankName} app</title>
<style>
  :root { --brand: #0b5d4b; --ok: #12805c; --no: #b42318; --ink: #1d2939; --muted: #667085; --card: #fff; --bg: #f2f4f7; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 16px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); background: var(--bg); }
  header { background: var(--brand); color: #fff; padding: 16px 20px calc(16px + env(safe-area-inset-top)); }
  header h1 { margin: 0; font-size: 20px; font-weight: 650; }
  header p { margin: 2px 0 0; opacity: .85; font-size: 14px; }
  main { max-width: 520px; margin: 0 auto; padding: 16px 16px 40px; }
  .who { display: grid; grid-template-columns: repeat(3, 1fr); gap: 8px; margin-bottom: 16px; }
  .who button { min-height: 48px; border-radius: 12px; border: 2px solid #d0d5dd; background: #fff; font: inherit; font-weight: 600; color: var(--ink); cursor: pointer; }
  .who button[aria-pressed="true"] { border-color: var(--brand); background: #e6f4f0; color: var(--brand); }
  .card { background: var(--card); border-radius: 16px; padding: 18px; margin-bottom: 14px; box-shadow: 0 1px 3px rgba(16,24,40,.1); }
  .merchant { font-size: 15px; color: var(--muted); margin: 0; }
  .amount { font-size: 34px; font-weight: 700; margin: 4px 0 10px; letter-spacing: -.5px; }
  dl { margin: 0 0 12px; display: grid; grid-template-columns: auto 1fr; gap: 4px 12px; font-size: 15px; }
  dt { color: var(--muted); } dd { margin: 0; overflow-wrap: anywhere; }
  .code { display: block; background: #fff7e6; border: 1px dashed #f79009; border-radius: 10px; padding: 10px 12px; margin-bottom: 12px; font-size: 14px; }
  .code strong { display: block; font: 700 22px/1.3 ui-monospace, SFMono-Regular, Menlo, monospace; letter-spacing: 1px; }
  .left { font-size: 13px; color: var(--muted); margin-bottom: 12px; }
  .actions { display: grid; grid-template-columns: 1fr 1fr; gap: 10px; }
  .actions button { min-height: 56px; border: 0; border-radius: 12px; font: inherit; font-size: 18px; font-weight: 650; color: #fff; cursor: pointer; }
  .approve { background: var(--ok); } .deny { background: var(--no); }
  .actions button:disabled { opacity: .5; }
  .empty { text-align: center; color: var(--muted); padding: 40px 12px; }
  .toast { position: fixed; left: 50%; bottom: calc(20px + env(safe-area-inset-bottom)); transform: translateX(-50%); background: var(--ink); color: #fff; padding: 10px 18px; border-radius: 999px; font-size: 15px; opacity: 0; transition: opacity .2s; pointer-events: none; }
  .toast.show { opacity: 1; }
</style>
</head>
<body>
<header><h1>${bankName}</h1><p id="subtitle">Approve payments from your phone</p></header>
<main>
  <div class="who" role="group" aria-label="Who are you?" id="who"></div>
  <section id="list" aria-live="polite"></section>
</main>
<div class="toast" id="toast" role="status"></div>
<script>
(() => {
  const customers = ${customers};
  const who = document.getElementById('who');
  const list = document.getElementById('list');
  const toast = document.getElementById('toast');
  let login = (location.hash.slice(1) || localStorage.getItem('sandbox-bank-login') || customers[0].login);
  if (!customers.some((c) => c.login === login)) login = customers[0].login;
  let requests = [];
  let fetchedAt = Date.now();

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    Object.assign(node, props || {});
    for (const child of children) node.append(child);
    return node;
  }
  function money(amount, currency) {
    try { return new Intl.NumberFormat(undefined, { style: 'currency', currency }).format(Number(amount)); }
    catch { return amount + ' ' + currency; }
  }
  function left(seconds) {
    const s = Math.max(0, Math.round(seconds - (Date.now() - fetchedAt) / 1000));
    return s >= 60 ? Math.floor(s / 60) + ' min ' + String(s % 60).padStart(2, '0') + ' s left' : s + ' s left';
  }
  function say(text) {
    toast.textContent = text; toast.classList.add('show');
    clearTimeout(say.t); say.t = setTimeout(() => toast.classList.remove('show'), 1800);
  }
  function renderWho() {
    who.replaceChildren(...customers.map((c) => {
      const b = el('button', { type: 'button', textContent: c.name.split(' ')[0] });
      b.setAttribute('aria-pressed', String(c.login === login));
      b.onclick = () => { login = c.login; localStorage.setItem('sandbox-bank-login', login); location.hash = login; renderWho(); refresh(); };
      return b;
    }));
  }
  function renderList() {
    if (!requests.length) {
      list.replaceChildren(el('p', { className: 'empty', textContent: 'No pending requests. Requests from shops appear here.' }));
      return;
    }
    list.replaceChildren(...requests.map((r) => {
      const rows = el('dl');
      const add = (k, v) => { if (v) rows.append(el('dt', { textContent: k }), el('dd', { textContent: v })); };
      if (r.payment) {
        add('To', r.payment.creditorName);
        add('IBAN', r.payment.creditorIban);
        add('Reference', r.payment.remittanceInformation);
      } else {
        add('Access', r.scope);
      }
      const card = el('article', { className: 'card' },
        el('p', { className: 'merchant', textContent: r.merchantName + ' asks you to ' + (r.payment ? 'pay' : 'sign in') }),
        el('div', { className: 'amount', textContent: r.payment ? money(r.payment.amount, r.payment.currency) : 'Sign-in' }),
        rows);
      if (r.bindingMessage) {
        card.append(el('div', { className: 'code' }, 'Check that the shop shows this code', el('strong', { textContent: r.bindingMessage })));
      }
      const timer = el('div', { className: 'left', textContent: left(r.secondsLeft) });
      timer.dataset.seconds = String(r.secondsLeft);
      card.append(timer);
      const approve = el('button', { type: 'button', className: 'approve', textContent: 'Approve' });
      const deny = el('button', { type: 'button', className: 'deny', textContent: 'Deny' });
      const decide = async (decision) => {
        approve.disabled = deny.disabled = true;
        const res = await fetch('/app/api/requests/' + encodeURIComponent(r.authReqId) + '/' + decision, {
          method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ login }),
        }).catch(() => null);
        say(res && res.ok ? (decision === 'approve' ? 'Approved' : 'Denied') : 'Could not reach the bank, try again');
        refresh();
      };
      approve.onclick = () => decide('approve');
      deny.onclick = () => decide('deny');
      card.append(el('div', { className: 'actions' }, deny, approve));
      return card;
    }));
  }
  async function refresh() {
    try {
      const res = await fetch('/app/api/customers/' + encodeURIComponent(login) + '/requests', { cache: 'no-store' });
      if (res.ok) { requests = (await res.json()).requests; fetchedAt = Date.now(); renderList(); }
    } catch { /* the bank restarts in development: keep the last list */ }
  }
  renderWho();
  refresh();
  setInterval(refresh, 2000);
  setInterval(() => { for (const t of document.querySelectorAll('.left')) t.textContent = left(Number(t.dataset.seconds)); }, 1000);
})();
</script>
</body>
</html>
`;
}
