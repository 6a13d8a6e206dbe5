"""The WSGI entry point (`gunicorn wsgi:app`), and `python wsgi.py` for the embedded default.

`python wsgi.py` applies migrations and serves on HOST:PORT (127.0.0.1:3000 unless told
otherwise). With no REDIS_URL it is the embedded system's server: its in-process Redis is shared
with the checkout's other processes (the `flask` CLI, a second server; see streampay/embedded.py)
and the RQ worker and cron scheduler run on its threads.
"""

from dotenv import load_dotenv

load_dotenv()

from streampay import create_app, preload  # noqa: E402

app = create_app()
preload()

if __name__ == "__main__":
    from streampay.embedded import prepare_server

    prepare_server(app)
    app.run(host=app.config["HOST"], port=app.config["PORT"], threaded=True)
