FLASK_APP=streampay:create_app
# `flask run` serves where `python wsgi.py` does, so the README's commands work with either.
FLASK_RUN_PORT=3000
