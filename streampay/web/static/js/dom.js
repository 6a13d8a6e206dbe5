// Small DOM helpers: elements built from data (text is always text, never HTML).
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === false || value == null) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// A labelled form field; `attrs` go to the input.
export function field(label, attrs, hint) {
  const id = attrs.id || `f-${attrs.name}`;
  const control = attrs.tag === "textarea" ? h("textarea", { ...attrs, tag: null, id }) : h("input", { ...attrs, id });
  const hintEl = hint ? h("small", { id: `${id}-hint` }, hint) : null;
  if (hintEl) control.setAttribute("aria-describedby", hintEl.id);
  return h("p", { class: "field" }, h("label", { for: id }, label), control, hintEl,
    h("span", { class: "field-error", id: `${id}-error`, "aria-live": "polite" }));
}

// Show an ApiError on a form: the message, and each field's own error next to it.
export function showErrors(form, error) {
  form.querySelectorAll(".field-error").forEach((el) => { el.textContent = ""; });
  form.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
  const status = form.querySelector(".form-status");
  if (status) status.textContent = error ? error.message : "";
  const errors = (error && error.errors) || {};
  for (const [name, messages] of Object.entries(errors.json || errors.form || errors.query || errors)) {
    const input = form.querySelector(`[name="${CSS.escape(name)}"]`);
    if (!input) continue;
    input.setAttribute("aria-invalid", "true");
    const slot = form.querySelector(`#${CSS.escape(input.id)}-error`);
    if (slot) slot.textContent = [].concat(messages).join(" ");
  }
}

export function definitionList(pairs) {
  return h("dl", { class: "stats" }, pairs.map(([term, value, id]) => [h("dt", {}, term), h("dd", { id }, value)]));
}
