// The demo shop's page script: a basket, and the checkout element in bank picker mode. The
// element asks our server (POST /api/checkout) to create the checkout: the API key never reaches
// the browser, and the server prices the basket itself.
const catalogue = JSON.parse(document.getElementById('catalogue').textContent);
const basket = Object.fromEntries(catalogue.map((p, i) => [p.id, i === 0 ? 2 : 0]));
const checkout = document.querySelector('bankpay-checkout');
const thanks = document.getElementById('thanks');
const currency = checkout.getAttribute('currency');
let locked = false;

const money = (minor) =>
  new Intl.NumberFormat(document.documentElement.lang, { style: 'currency', currency }).format(minor / 100);

function render() {
  const rows = document.getElementById('basket-rows');
  rows.replaceChildren();
  let total = 0;
  for (const product of catalogue) {
    const quantity = basket[product.id];
    document.getElementById(`qty-${product.id}`).value = String(quantity);
    for (const button of document.querySelectorAll(`[data-product="${product.id}"]`)) {
      const step = Number(button.dataset.step);
      button.disabled = locked || quantity + step < 0 || quantity + step > 9;
    }
    if (quantity === 0) continue;
    total += quantity * product.price;
    const row = document.createElement('tr');
    const what = document.createElement('td');
    what.textContent = `${quantity} × ${product.name}`;
    const sum = document.createElement('td');
    sum.textContent = money(quantity * product.price);
    row.append(what, sum);
    rows.append(row);
  }
  document.getElementById('basket-total').textContent = money(total);
  checkout.setAttribute('amount', String(total));
  checkout.hidden = total === 0;
}

for (const button of document.querySelectorAll('[data-product]')) {
  button.addEventListener('click', () => {
    basket[button.dataset.product] += Number(button.dataset.step);
    render();
  });
}

document.getElementById('language').addEventListener('change', (event) => {
  document.documentElement.lang = event.target.value;
  checkout.setAttribute('lang', event.target.value);
  render();
});

checkout.createCheckout = async ({ bankId, loginHint }) => {
  locked = true;
  render();
  const res = await fetch('/api/checkout', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ bankId, loginHint, items: basket, attempt: crypto.randomUUID() }),
  });
  if (!res.ok) {
    locked = false;
    render();
    throw new Error(`the shop could not create the checkout: ${res.status}`);
  }
  const created = await res.json();
  return created.clientSecret;
};

checkout.addEventListener('bankpay:succeeded', (event) => {
  document.getElementById('thanks-reference').textContent = event.detail.reference;
  thanks.hidden = false;
});
checkout.addEventListener('bankpay:retry', () => {
  locked = false;
  render();
});

render();
