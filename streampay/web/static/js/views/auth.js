// Sign up and sign in: POST /auth/register and /auth/login; the tokens are kept in localStorage.
import { api, session } from "../api.js";
import { field, h, showErrors } from "../dom.js";

function done(reply) {
  session.save(reply);
  location.hash = reply.user.role === "creator" ? "#/studio" : "#/catalogue";
}

export function renderSignIn(main) {
  const form = h("form", { class: "card narrow", novalidate: true },
    field("Email", { name: "email", type: "email", required: true, autocomplete: "email" }),
    field("Password", { name: "password", type: "password", required: true, autocomplete: "current-password" }),
    h("p", { class: "form-status", role: "alert" }),
    h("button", { type: "submit" }, "Sign in"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const data = Object.fromEntries(new FormData(form));
    try { done(await api("/auth/login", { method: "POST", body: data })); } catch (error) { showErrors(form, error); }
  });
  main.append(h("h1", {}, "Sign in"), form,
    h("p", {}, "New here? ", h("a", { href: "#/sign-up" }, "Create an account"), "."));
}

export function renderSignUp(main) {
  const role = h("fieldset", {},
    h("legend", {}, "I want to"),
    h("label", {}, h("input", { type: "radio", name: "role", value: "viewer", checked: true }), " watch (viewer)"),
    h("label", {}, h("input", { type: "radio", name: "role", value: "creator" }), " publish (creator)"));
  const form = h("form", { class: "card narrow", novalidate: true },
    field("Email", { name: "email", type: "email", required: true, autocomplete: "email" }),
    field("Username", { name: "username", required: true, autocomplete: "username" }, "3 to 32 letters, digits, '_', '.' or '-'."),
    field("Password", { name: "password", type: "password", required: true, autocomplete: "new-password" },
      "At least 8 characters, with a letter and a digit."),
    role,
    h("p", { class: "form-status", role: "alert" }),
    h("button", { type: "submit" }, "Create account"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const data = Object.fromEntries(new FormData(form));
    try { done(await api("/auth/register", { method: "POST", body: data })); } catch (error) { showErrors(form, error); }
  });
  main.append(h("h1", {}, "Create an account"), form,
    h("p", {}, "Have one? ", h("a", { href: "#/sign-in" }, "Sign in"), "."));
}
