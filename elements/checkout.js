// @ts-check
/**
 * <bankpay-checkout>: a Bankpay checkout on the shopper's page (DESIGN.md §7.4). One ES module,
 * no dependencies, no build step: served by the API at /elements/v1/checkout.js, or imported from
 * a bundler. Licensed Apache-2.0.
 *
 *   <bankpay-checkout client-secret="chk_…_secret_…" api-base="https://pay.shop.example">
 *
 * It reads the checkout with its clientSecret only (never a merchant key), follows it live (the
 * stream of DESIGN.md §7.2, else held reads with Prefer: wait, else plain reads after Retry-After)
 * and fires `bankpay:<status>` events with the checkout as `detail`. Without a client-secret it is
 * a bank picker: the shopper picks a bank and types their bank login, and the merchant's
 * `createCheckout({ bankId, loginHint })` (its own server, which holds the key) answers the
 * clientSecret of the checkout it made.
 *
 * Every string that comes from the merchant or a bank (reference, description, failure message,
 * bank names) becomes a Text node: nothing is ever parsed as HTML.
 */

const TERMINAL = ['succeeded', 'declined', 'expired', 'failed', 'canceled'];
/** Failure codes, by the sentence the shopper reads (the rest: `failure`). */
const FAILURE_KINDS = {
  login: ['unknown_user_id', 'expired_login_hint_token'],
  unreachable: ['bank_unavailable', 'temporarily_unavailable'],
  rejected: ['payment_rejected'],
  unknown: ['payment_outcome_unknown'],
  lost: ['approval_lost', 'invalid_grant'],
  setup: [
    'configuration_error',
    'invalid_id_token',
    'invalid_bank_response',
    'invalid_client',
    'unauthorized_client',
    'invalid_scope',
    'unsupported_grant_type',
    'invalid_request',
    'invalid_binding_message',
    'missing_user_code',
    'invalid_user_code',
  ],
};
/** The longest a held read waits (seconds; the API holds at most 30). */
const WAIT = 25;

/** @typedef {{ code: string, message: string }} Failure */
/**
 * @typedef {{ id: string, status: string, amount: number, currency: string, bankId: string,
 *   reference: string, description: string | null, bindingMessage: string, createdAt: string,
 *   updatedAt: string, expiresAt: string, payment: { bankPaymentId: string, status: string } | null,
 *   failure: Failure | null }} Checkout
 */
/** @typedef {{ id: string, name: string }} Bank */
/** @typedef {(choice: { bankId: string, loginHint: string }) => Promise<string | { clientSecret: string }>} CreateCheckout */
/** @typedef {Record<string, string>} Strings */

/** @type {Record<string, Strings>} */
const translations = {
  en: {
    pickTitle: 'Pay with your bank',
    bank: 'Your bank',
    login: 'Your bank login',
    loginHint: 'Your bank will ask you to approve the payment in its app.',
    pay: 'Pay {amount}',
    next: 'Continue',
    banksLoading: 'Loading the banks…',
    banksFailed: 'The list of banks could not be loaded.',
    createFailed: 'The payment could not be started. Please try again.',
    creating: 'Sending the payment to your bank…',
    loading: 'Loading the payment…',
    to: 'to {merchant}',
    pending: 'Contacting your bank…',
    pendingText: 'Your bank will send the payment to its app on your phone.',
    awaiting: 'Approve in your bank app',
    awaitingText:
      'Your bank has sent this payment to its app on your phone. Open the app and approve it there.',
    codeLabel: 'Check that your bank app shows this code',
    left: '{time} left to approve',
    timeUp: 'Time is up. Waiting for your bank…',
    oneMinute: 'One minute left to approve the payment.',
    awaitingSay: 'Approve the payment in your bank app. Check that it shows the code {code}.',
    authorized: 'Approved. Completing the payment…',
    succeeded: 'Payment complete',
    succeededText: 'You paid {amount}.',
    declined: 'Payment declined',
    declinedText: 'You declined the payment in your bank app. Nothing was paid.',
    expired: 'The request expired',
    expiredText: 'The payment was not approved in time. Nothing was paid.',
    failed: 'Payment failed',
    canceled: 'Payment canceled',
    canceledText: 'The shop canceled this payment. Nothing was paid.',
    failure: 'Your bank could not complete the payment. Nothing was paid.',
    'failure.login': 'Your bank does not know this login. Check it and try again.',
    'failure.unreachable': 'Your bank could not be reached. Nothing was paid; please try again.',
    'failure.rejected': 'Your bank rejected the payment. Nothing was paid.',
    'failure.unknown':
      'We could not confirm the payment with your bank. Please contact the shop before you pay again.',
    'failure.lost': 'Your approval did not reach the shop. Nothing was paid; please try again.',
    'failure.setup': 'This bank cannot take payments for this shop right now. Nothing was paid.',
    code: 'Code: {code}',
    retry: 'Try again',
    reconnecting: 'Connection lost. Reconnecting…',
    error: 'This payment could not be loaded',
    errorText: 'Reload the page, or start the payment again.',
  },
  de: {
    pickTitle: 'Mit Ihrer Bank bezahlen',
    bank: 'Ihre Bank',
    login: 'Ihr Bank-Login',
    loginHint: 'Ihre Bank bittet Sie, die Zahlung in ihrer App freizugeben.',
    pay: '{amount} bezahlen',
    next: 'Weiter',
    banksLoading: 'Banken werden geladen…',
    banksFailed: 'Die Liste der Banken konnte nicht geladen werden.',
    createFailed: 'Die Zahlung konnte nicht gestartet werden. Bitte versuchen Sie es erneut.',
    creating: 'Die Zahlung wird an Ihre Bank gesendet…',
    loading: 'Die Zahlung wird geladen…',
    to: 'an {merchant}',
    pending: 'Verbindung zu Ihrer Bank…',
    pendingText: 'Ihre Bank sendet die Zahlung an ihre App auf Ihrem Telefon.',
    awaiting: 'In Ihrer Banking-App freigeben',
    awaitingText:
      'Ihre Bank hat diese Zahlung an ihre App auf Ihrem Telefon gesendet. Öffnen Sie die App und geben Sie die Zahlung dort frei.',
    codeLabel: 'Prüfen Sie, dass Ihre Banking-App diesen Code zeigt',
    left: 'Noch {time} zum Freigeben',
    timeUp: 'Die Zeit ist um. Warten auf Ihre Bank…',
    oneMinute: 'Noch eine Minute, um die Zahlung freizugeben.',
    awaitingSay:
      'Geben Sie die Zahlung in Ihrer Banking-App frei. Prüfen Sie, dass sie den Code {code} zeigt.',
    authorized: 'Freigegeben. Die Zahlung wird abgeschlossen…',
    succeeded: 'Zahlung erfolgreich',
    succeededText: 'Sie haben {amount} bezahlt.',
    declined: 'Zahlung abgelehnt',
    declinedText: 'Sie haben die Zahlung in Ihrer Banking-App abgelehnt. Es wurde nichts bezahlt.',
    expired: 'Die Anfrage ist abgelaufen',
    expiredText: 'Die Zahlung wurde nicht rechtzeitig freigegeben. Es wurde nichts bezahlt.',
    failed: 'Zahlung fehlgeschlagen',
    canceled: 'Zahlung storniert',
    canceledText: 'Der Shop hat diese Zahlung storniert. Es wurde nichts bezahlt.',
    failure: 'Ihre Bank konnte die Zahlung nicht ausführen. Es wurde nichts bezahlt.',
    'failure.login': 'Ihre Bank kennt dieses Login nicht. Bitte prüfen Sie es und versuchen Sie es erneut.',
    'failure.unreachable':
      'Ihre Bank war nicht erreichbar. Es wurde nichts bezahlt; bitte versuchen Sie es erneut.',
    'failure.rejected': 'Ihre Bank hat die Zahlung abgelehnt. Es wurde nichts bezahlt.',
    'failure.unknown':
      'Die Zahlung konnte bei Ihrer Bank nicht bestätigt werden. Bitte wenden Sie sich an den Shop, bevor Sie erneut bezahlen.',
    'failure.lost':
      'Ihre Freigabe kam nicht beim Shop an. Es wurde nichts bezahlt; bitte versuchen Sie es erneut.',
    'failure.setup':
      'Diese Bank kann gerade keine Zahlungen für diesen Shop annehmen. Es wurde nichts bezahlt.',
    code: 'Code: {code}',
    retry: 'Erneut versuchen',
    reconnecting: 'Verbindung unterbrochen. Neuer Versuch…',
    error: 'Diese Zahlung konnte nicht geladen werden',
    errorText: 'Laden Sie die Seite neu oder starten Sie die Zahlung erneut.',
  },
};

const CSS = `
:host{display:block;max-width:var(--bankpay-max-width,28rem);font:var(--bankpay-font,16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif);color:var(--bankpay-color-text,#1d2939)}
:host([hidden]){display:none}
*{box-sizing:border-box}
.box{position:relative;background:var(--bankpay-color-background,#fff);border:1px solid var(--bankpay-color-border,#d0d5dd);border-radius:var(--bankpay-radius,12px);padding:var(--bankpay-spacing,20px)}
.summary{margin-bottom:12px}
.amount{font-size:1.75em;font-weight:700;line-height:1.2}
.muted{color:var(--bankpay-color-muted,#475467);font-size:.9em;margin:4px 0}
h2{font-size:1.2em;margin:8px 0;line-height:1.3}
h2:focus{outline:none}
p{margin:8px 0}
.ref{overflow-wrap:anywhere}
.codebox{margin:14px 0;padding:12px 14px;border:2px dashed var(--bankpay-color-code-border,#b54708);border-radius:var(--bankpay-radius,12px);background:var(--bankpay-color-code-background,#fffaeb)}
.code{display:block;margin-top:4px;font:700 clamp(1.5em,8vw,2em)/1.2 var(--bankpay-code-font,ui-monospace,SFMono-Regular,Menlo,Consolas,monospace);letter-spacing:.05em;overflow-wrap:anywhere}
.row{display:flex;gap:10px;align-items:center}
.spin{flex:none;width:1.25em;height:1.25em;border:3px solid var(--bankpay-color-border,#d0d5dd);border-top-color:var(--bankpay-color-primary,#0b5d4b);border-radius:50%;animation:s 1s linear infinite}
@keyframes s{to{transform:rotate(1turn)}}
@media (prefers-reduced-motion:reduce){.spin{animation:none}}
.icon{flex:none;display:inline-grid;place-items:center;width:2em;height:2em;border-radius:50%;color:#fff;font-weight:700;background:var(--bankpay-color-danger,#b42318)}
.ok .icon{background:var(--bankpay-color-success,#067647)}
.ok h2{color:var(--bankpay-color-success,#067647)}
label{display:block;font-weight:600;margin:12px 0 4px}
select,input{display:block;width:100%;min-height:44px;padding:8px 10px;font:inherit;color:inherit;background:var(--bankpay-color-background,#fff);border:1px solid var(--bankpay-color-input-border,#667085);border-radius:8px}
button{display:block;width:100%;min-height:48px;margin-top:16px;padding:10px 16px;font:inherit;font-weight:650;color:var(--bankpay-color-on-primary,#fff);background:var(--bankpay-color-primary,#0b5d4b);border:0;border-radius:var(--bankpay-button-radius,10px);cursor:pointer}
button:disabled{opacity:.6;cursor:default}
:focus-visible{outline:3px solid var(--bankpay-color-focus,#175cd3);outline-offset:2px}
.err{color:var(--bankpay-color-danger,#b42318);font-weight:600}
.sr{position:absolute;width:1px;height:1px;margin:-1px;padding:0;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap;border:0}
`;

/** The element's styles: one constructed sheet shared by every instance (no inline <style>: a strict CSP passes). */
/** @type {CSSStyleSheet | null} */
let sheet = null;

/**
 * A DOM element: attributes set, children appended. A string child becomes a Text node, so text
 * from the merchant or a bank is shown as typed, never parsed.
 * @param {string} tag
 * @param {Record<string, string | undefined>} [attrs]
 * @param {...(Node | string | null | undefined | false)} children
 * @returns {HTMLElement}
 */
function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined) node.setAttribute(k, v);
  for (const c of children) if (c) node.append(c);
  return node;
}

/**
 * `{name}` placeholders filled in (a plain string: it is shown as text).
 * @param {string} text
 * @param {Record<string, string>} [values]
 */
function fill(text, values = {}) {
  return text.replace(/\{(\w+)\}/g, (m, k) => values[k] ?? m);
}

/** @param {number} ms */
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * An amount in minor units (ISO 4217 exponent: 4990 EUR is 49.90) for the shopper's language.
 * @param {number} amount @param {string} currency @param {string} lang
 */
function money(amount, currency, lang) {
  try {
    const f = new Intl.NumberFormat(lang, { style: 'currency', currency });
    return f.format(amount / 10 ** (f.resolvedOptions().maximumFractionDigits ?? 2));
  } catch {
    return `${amount} ${currency}`;
  }
}

/** @param {string} code */
function failureKind(code) {
  for (const [kind, codes] of Object.entries(FAILURE_KINDS)) if (codes.includes(code)) return kind;
  return '';
}

const Base = typeof HTMLElement === 'undefined' ? /** @type {typeof HTMLElement} */ (class {}) : HTMLElement;

export class BankpayCheckout extends Base {
  static observedAttributes = ['client-secret', 'api-base', 'lang', 'amount', 'currency', 'merchant-name'];
  /** Strings by language; add one (`BankpayCheckout.translations.fr = {...}`): missing keys are English. */
  static translations = translations;

  /** @type {ShadowRoot} */ #root;
  /** @type {HTMLElement} */ #body;
  /** @type {HTMLElement} */ #say;
  /** @type {'picker' | 'creating' | 'follow' | 'error'} */ #view = 'picker';
  /** @type {Checkout | null} */ #checkout = null;
  /** @type {Bank[] | null} */ #banks = null;
  #banksFailed = false;
  #formError = '';
  #reconnecting = false;
  #choice = { bankId: '', loginHint: '' };
  /** The current follow: stop() ends its stream, reads and timers. @type {{ stop(): void } | null} */
  #run = null;
  #tick = 0;
  #warned = false;
  /** Focus was in the element when the view changed: the next heading takes it. */
  #keepFocus = false;
  /** @type {CreateCheckout | undefined} */ #create;
  /** @type {Bank[] | undefined} */ #givenBanks;
  /** @type {Strings} */ #strings = {};

  constructor() {
    super();
    this.#root = this.attachShadow({ mode: 'open' });
    if (!sheet && 'adoptedStyleSheets' in Document.prototype) {
      sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS);
    }
    if (sheet) this.#root.adoptedStyleSheets = [sheet];
    else this.#root.append(h('style', {}, CSS));
    this.#body = h('div', { part: 'body' });
    this.#say = h('div', { class: 'sr', role: 'status', 'aria-live': 'polite', 'aria-atomic': 'true' });
    this.#root.append(h('div', { class: 'box', part: 'container' }, this.#body, this.#say));
    // Properties set before the element was defined (a merchant's script that ran first).
    for (const p of /** @type {const} */ (['createCheckout', 'banks', 'strings'])) {
      if (Object.hasOwn(this, p)) {
        const value = this[p];
        delete this[p];
        /** @type {any} */ (this)[p] = value;
      }
    }
  }

  /** The merchant's callback: creates the checkout on its own server and answers its clientSecret. */
  get createCheckout() {
    return this.#create;
  }
  set createCheckout(fn) {
    this.#create = fn;
  }
  /** The banks to offer (default: GET {api-base}/v1/banks). */
  get banks() {
    return this.#givenBanks;
  }
  set banks(list) {
    this.#givenBanks = list;
    this.#banks = list ?? null;
    this.#render();
  }
  /** Strings of this element that replace the translation's (same keys). */
  get strings() {
    return this.#strings;
  }
  set strings(values) {
    this.#strings = values ?? {};
    this.#render();
  }
  /** The checkout as last seen (null before the first read). */
  get checkout() {
    return this.#checkout;
  }

  connectedCallback() {
    this.#start();
  }

  disconnectedCallback() {
    this.#stop();
  }

  /** @param {string} name @param {string | null} old @param {string | null} value */
  attributeChangedCallback(name, old, value) {
    if (old === value || !this.isConnected) return;
    if (name === 'api-base') this.#banks = this.#givenBanks ?? null;
    if (name === 'client-secret' || name === 'api-base') this.#start();
    else this.#render();
  }

  #stop() {
    this.#run?.stop();
    this.#run = null;
    clearInterval(this.#tick);
  }

  #start() {
    this.#stop();
    this.#checkout = null;
    this.#reconnecting = false;
    this.#warned = false;
    const secret = this.getAttribute('client-secret');
    if (secret) {
      this.#view = 'follow';
      this.#follow(secret);
    } else if (this.#view !== 'creating') {
      this.#view = 'picker';
      if (!this.#banks) this.#loadBanks();
    }
    this.#render();
  }

  get #base() {
    return (this.getAttribute('api-base') ?? '').replace(/\/+$/, '');
  }

  get #lang() {
    const tag = this.closest('[lang]')?.getAttribute('lang') || navigator.language || 'en';
    return tag;
  }

  /** @param {string} key @param {Record<string, string>} [values] */
  #t(key, values) {
    const lang = this.#lang.toLowerCase();
    const table = translations[lang] ?? translations[lang.split('-')[0] ?? ''] ?? {};
    return fill(this.#strings[key] ?? table[key] ?? translations.en?.[key] ?? key, values);
  }

  /** @param {string} type @param {unknown} detail */
  #emit(type, detail) {
    return this.dispatchEvent(
      new CustomEvent(type, { detail, bubbles: true, composed: true, cancelable: true }),
    );
  }

  /** @param {string} text */
  #announce(text) {
    // Emptied first: the same sentence twice is still read again.
    this.#say.textContent = '';
    setTimeout(() => {
      this.#say.textContent = text;
    }, 50);
  }

  async #loadBanks() {
    this.#banksFailed = false;
    try {
      const res = await fetch(`${this.#base}/v1/banks`, { headers: { accept: 'application/json' } });
      if (!res.ok) throw new Error(String(res.status));
      const body = await res.json();
      this.#banks = Array.isArray(body?.data) ? body.data : [];
    } catch {
      this.#banksFailed = true;
    }
    this.#render();
  }

  /** @param {SubmitEvent} event */
  async #submit(event) {
    event.preventDefault();
    const form = /** @type {HTMLFormElement} */ (event.target);
    const data = new FormData(form);
    this.#choice = {
      bankId: String(data.get('bank') ?? ''),
      loginHint: String(data.get('login') ?? '').trim(),
    };
    this.#formError = '';
    this.#keepFocus = true;
    this.#view = 'creating';
    this.#render();
    this.#root.querySelector('h2')?.focus();
    this.#announce(this.#t('creating'));
    if (!this.#create) {
      // No callback: the merchant's listener creates the checkout and sets client-secret.
      this.#emit('bankpay:bank-selected', { ...this.#choice });
      return;
    }
    try {
      const made = await this.#create({ ...this.#choice });
      const secret = typeof made === 'string' ? made : made?.clientSecret;
      if (!secret) throw new Error('no clientSecret');
      this.setAttribute('client-secret', secret);
    } catch (error) {
      this.#view = 'picker';
      this.#formError = this.#t('createFailed');
      this.#render();
      this.#emit('bankpay:error', { code: 'create_failed', error });
    }
  }

  #retry() {
    if (!this.#emit('bankpay:retry', this.#checkout)) return;
    if (this.#create || !this.hasAttribute('client-secret')) {
      this.#view = 'picker';
      // Removing the attribute starts the picker (attributeChangedCallback).
      if (this.hasAttribute('client-secret')) this.removeAttribute('client-secret');
      else this.#start();
      const focus = this.#root.querySelector('input, select');
      if (focus instanceof HTMLElement) focus.focus();
    }
  }

  /**
   * Follows checkout of `secret` until it is terminal: the stream, then held reads, then plain
   * reads, each falling back to the next when the browser or the way to the API cannot do it.
   * @param {string} secret
   */
  #follow(secret) {
    const at = secret.lastIndexOf('_secret_');
    const id = encodeURIComponent(secret.slice(0, at));
    const url = `${this.#base}/v1/checkouts/${id}`;
    let stopped = false;
    /** @type {EventSource | undefined} */
    let source;
    const abort = new AbortController();
    let etag = '';
    this.#run = {
      stop() {
        stopped = true;
        source?.close();
        abort.abort();
      },
    };
    if (at <= 0) {
      this.#fatal('invalid_client_secret');
      return;
    }

    const reads = async () => {
      let held = true;
      let failures = 0;
      while (!stopped) {
        /** @type {Response} */
        let res;
        const asked = Date.now();
        try {
          /** @type {Record<string, string>} */
          const headers = { authorization: `Bearer ${secret}`, accept: 'application/json' };
          if (etag) {
            headers['if-none-match'] = etag;
            if (held) headers.prefer = `wait=${WAIT}`;
          }
          res = await fetch(url, { headers, cache: 'no-store', signal: abort.signal });
        } catch {
          if (stopped) return;
          this.#setReconnecting(true);
          // Unreachable, or refused by CORS (the page's origin not in the API's CORS_ORIGINS).
          if (failures === 2) this.#emit('bankpay:error', { code: 'unreachable' });
          await sleep(Math.min(10_000, 1000 * 2 ** failures++) * (0.75 + Math.random() / 2));
          continue;
        }
        const retryAfter = Number(res.headers.get('retry-after'));
        const pause = Number.isFinite(retryAfter) && retryAfter > 0 ? Math.min(retryAfter, 30) * 1000 : 0;
        if (res.status === 200 || res.status === 304) {
          failures = 0;
          this.#setReconnecting(false);
          etag = res.headers.get('etag') ?? '';
          if (res.status === 200) this.#update(await res.json());
          if (stopped || (this.#checkout && TERMINAL.includes(this.#checkout.status))) return;
          // A 304 that was not held (a proxy dropped Prefer): plain reads from now on.
          if (res.status === 304 && held && !res.headers.get('preference-applied')) held = false;
          if (!held) await sleep(pause || 2000);
          // A hold that ended at once (the API shutting down): not a loop of requests.
          else if (res.status === 304 && Date.now() - asked < 1000) await sleep(1000);
        } else if (res.status === 401 || res.status === 404 || res.status === 400) {
          this.#fatal(res.status === 404 ? 'checkout_not_found' : 'unauthorized');
          return;
        } else {
          // 429 (too many held reads or streams), 5xx, 503: wait, then read plainly if it was the hold.
          if (res.status === 429) held = false;
          if (res.status >= 500) this.#setReconnecting(true);
          await sleep(pause || Math.min(10_000, 1000 * 2 ** failures++));
        }
      }
    };

    if (typeof EventSource !== 'function') {
      reads();
      return;
    }
    source = new EventSource(`${url}/stream?client_secret=${encodeURIComponent(secret)}`);
    const stream = source;
    stream.addEventListener('checkout', (event) => {
      const message = /** @type {MessageEvent} */ (event);
      etag = `W/"${message.lastEventId}"`;
      this.#setReconnecting(false);
      this.#update(JSON.parse(message.data));
      if (this.#checkout && TERMINAL.includes(this.#checkout.status)) stream.close();
    });
    stream.addEventListener('open', () => this.#setReconnecting(false));
    stream.addEventListener('error', () => {
      if (stopped) return;
      // CLOSED: refused (not found, a limit, no CORS) or given up: reads take over. Otherwise the
      // EventSource reconnects by itself, sending the last event id.
      if (stream.readyState === EventSource.CLOSED) reads();
      else if (this.#checkout) this.#setReconnecting(true);
    });
  }

  /** @param {boolean} on */
  #setReconnecting(on) {
    if (on === this.#reconnecting) return;
    this.#reconnecting = on;
    this.#render();
    if (on) this.#announce(this.#t('reconnecting'));
  }

  /** @param {string} code */
  #fatal(code) {
    this.#view = 'error';
    this.#run?.stop();
    this.#render();
    this.#announce(`${this.#t('error')}. ${this.#t('errorText')}`);
    this.#emit('bankpay:error', { code });
  }

  /** @param {Checkout} checkout */
  #update(checkout) {
    const before = this.#checkout?.status;
    this.#checkout = checkout;
    const changed = checkout.status !== before;
    const hadFocus = this.#keepFocus || !!this.#root.activeElement;
    this.#render();
    if (!changed) return;
    const s = checkout.status;
    const say =
      s === 'awaiting_approval'
        ? this.#t('awaitingSay', { code: checkout.bindingMessage })
        : s === 'pending' || s === 'authorized'
          ? this.#t(s)
          : [this.#t(s), this.#statusText(checkout)].join('. ');
    this.#announce(say);
    // Focus that was in the element goes to the news, the new title (or to the next view's).
    const heading = this.#root.querySelector('h2');
    this.#keepFocus = hadFocus && !heading;
    if (hadFocus) heading?.focus();
    this.#emit(`bankpay:${s}`, checkout);
  }

  /** @param {Checkout} c */
  #statusText(c) {
    if (c.status === 'failed') {
      const kind = failureKind(c.failure?.code ?? '');
      return this.#t(kind ? `failure.${kind}` : 'failure');
    }
    if (c.status === 'succeeded') return this.#t('succeededText', { amount: this.#money(c) });
    return this.#t(`${c.status}Text`);
  }

  /** @param {{ amount: number, currency: string }} c */
  #money(c) {
    return money(c.amount, c.currency, this.#lang);
  }

  #render() {
    if (!this.#body) return;
    clearInterval(this.#tick);
    // What the shopper typed and where the focus was survive a new rendering (e.g. a new amount).
    const form = this.#root.querySelector('form');
    if (form) {
      const data = new FormData(form);
      this.#choice = { bankId: String(data.get('bank') ?? ''), loginHint: String(data.get('login') ?? '') };
    }
    const focused = this.#root.activeElement?.id;
    const c = this.#checkout;
    /** @type {(Node | string | false | null | undefined)[]} */
    const parts = [];
    const amount = c ?? this.#givenAmount();
    const merchant = this.getAttribute('merchant-name');
    if (amount) {
      parts.push(
        h(
          'div',
          { class: 'summary', part: 'summary' },
          h('div', { class: 'amount', part: 'amount' }, this.#money(amount)),
          merchant && h('p', { class: 'muted', part: 'merchant' }, this.#t('to', { merchant })),
          c &&
            h(
              'p',
              { class: 'muted ref', part: 'reference' },
              [c.reference, c.description].filter(Boolean).join(' · '),
            ),
        ),
      );
    }
    if (this.#view === 'picker') parts.push(...this.#picker());
    else if (this.#view === 'creating') parts.push(this.#busy(this.#t('creating')));
    else if (this.#view === 'error') parts.push(...this.#ending(this.#t('error'), this.#t('errorText'), '!'));
    else if (!c) parts.push(this.#busy(this.#t('loading')));
    else parts.push(...this.#status(c));
    if (this.#reconnecting && c && !TERMINAL.includes(c.status))
      parts.push(h('p', { class: 'muted', part: 'notice' }, this.#t('reconnecting')));
    this.#body.replaceChildren(.../** @type {(Node | string)[]} */ (parts.filter(Boolean)));
    if (focused) this.#root.getElementById(focused)?.focus();
  }

  #givenAmount() {
    const amount = Number(this.getAttribute('amount'));
    const currency = this.getAttribute('currency');
    return currency && Number.isInteger(amount) && amount > 0 ? { amount, currency } : null;
  }

  /** A view that waits: a spinner and its title. @param {string} text */
  #busy(text) {
    return h(
      'div',
      { class: 'row', part: 'status' },
      h('span', { class: 'spin', 'aria-hidden': 'true' }),
      h('h2', { tabindex: '-1', part: 'title', id: 'title' }, text),
    );
  }

  /**
   * A terminal view: icon, title, text, and optionally details and Try again.
   * @param {string} title @param {string} text @param {string} icon
   * @param {string} [detail] @param {boolean} [retry]
   */
  #ending(title, text, icon, detail, retry) {
    const button = retry && h('button', { type: 'button', part: 'button retry' }, this.#t('retry'));
    if (button) button.addEventListener('click', () => this.#retry());
    return [
      h(
        'div',
        { class: `row${icon === '✓' ? ' ok' : ''}` },
        h('span', { class: 'icon', part: 'icon', 'aria-hidden': 'true' }, icon),
        h('h2', { tabindex: '-1', part: 'title', id: 'title' }, title),
      ),
      h('p', { part: 'text' }, text),
      detail && h('p', { class: 'muted ref', part: 'detail' }, detail),
      button,
    ];
  }

  /** @param {Checkout} c */
  #status(c) {
    const s = c.status;
    if (s === 'pending')
      return [
        this.#busy(this.#t('pending')),
        h('p', { class: 'muted', part: 'text' }, this.#t('pendingText')),
      ];
    if (s === 'authorized') return [this.#busy(this.#t('authorized'))];
    if (s === 'awaiting_approval') {
      const timer = h('p', { role: 'timer', part: 'countdown', class: 'muted' });
      const tick = () => {
        const ms = Date.parse(c.expiresAt) - Date.now();
        const sec = Math.max(0, Math.ceil(ms / 1000));
        timer.textContent =
          sec > 0
            ? this.#t('left', { time: `${Math.floor(sec / 60)}:${String(sec % 60).padStart(2, '0')}` })
            : this.#t('timeUp');
        if (sec <= 60 && sec > 55 && !this.#warned) {
          this.#warned = true;
          this.#announce(this.#t('oneMinute'));
        }
      };
      tick();
      this.#tick = window.setInterval(tick, 1000);
      return [
        h('h2', { tabindex: '-1', part: 'title', id: 'title' }, this.#t('awaiting')),
        h('p', { part: 'text' }, this.#t('awaitingText')),
        h(
          'div',
          { class: 'codebox', part: 'code-box' },
          h('span', { part: 'code-label', id: 'code-label' }, this.#t('codeLabel')),
          h('strong', { class: 'code', part: 'code' }, c.bindingMessage),
        ),
        timer,
      ];
    }
    const failure = c.failure;
    const detail =
      s === 'failed' && failure
        ? failureKind(failure.code)
          ? this.#t('code', { code: failure.code })
          : `${failure.message} (${failure.code})`
        : undefined;
    const retry = s !== 'succeeded' && s !== 'canceled' && failure?.code !== 'payment_outcome_unknown';
    return this.#ending(
      this.#t(s),
      this.#statusText(c),
      s === 'succeeded' ? '✓' : s === 'declined' || s === 'canceled' ? '✕' : '!',
      detail,
      retry,
    );
  }

  #picker() {
    if (this.#banksFailed) {
      const again = h('button', { type: 'button', part: 'button' }, this.#t('retry'));
      again.addEventListener('click', () => this.#loadBanks());
      return [h('p', { class: 'err', part: 'error', role: 'alert' }, this.#t('banksFailed')), again];
    }
    if (!this.#banks) return [this.#busy(this.#t('banksLoading'))];
    const given = this.#givenAmount();
    const select = h(
      'select',
      { id: 'bank', name: 'bank', required: '', part: 'select' },
      ...this.#banks.map((b) => {
        const option = h('option', { value: b.id }, b.name);
        if (b.id === this.#choice.bankId) option.setAttribute('selected', '');
        return option;
      }),
    );
    const login = h('input', {
      id: 'login',
      name: 'login',
      required: '',
      autocomplete: 'username',
      autocapitalize: 'none',
      spellcheck: 'false',
      'aria-describedby': 'login-hint',
      part: 'input',
    });
    /** @type {HTMLInputElement} */ (login).value =
      this.#choice.loginHint || this.getAttribute('login-hint') || '';
    const form = h(
      'form',
      { part: 'form' },
      h('h2', { tabindex: '-1', part: 'title', id: 'title' }, this.#t('pickTitle')),
      h('label', { for: 'bank', part: 'label' }, this.#t('bank')),
      select,
      h('label', { for: 'login', part: 'label' }, this.#t('login')),
      login,
      h('p', { class: 'muted', id: 'login-hint', part: 'hint' }, this.#t('loginHint')),
      this.#formError && h('p', { class: 'err', part: 'error', role: 'alert' }, this.#formError),
      h(
        'button',
        { type: 'submit', part: 'button primary' },
        given ? this.#t('pay', { amount: this.#money(given) }) : this.#t('next'),
      ),
    );
    form.addEventListener('submit', (e) => this.#submit(/** @type {SubmitEvent} */ (e)));
    return [form];
  }
}

if (typeof customElements !== 'undefined' && !customElements.get('bankpay-checkout')) {
  customElements.define('bankpay-checkout', BankpayCheckout);
}
