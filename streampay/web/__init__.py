"""The reference web player and creator studio: plain HTML, CSS and JavaScript modules on the public API."""
