"""The WSGI entry point (`gunicorn wsgi:app`), and `python wsgi.py` for the embedded default.

`python wsgi.py` applies migrations, starts the in-process worker and cron threads when no
REDIS_URL is set, and serves on HOST:PORT (127.0.0.1:3000 unless told otherwise).
"""

from dotenv import load_dotenv

load_dotenv()

from streampay import create_app  # noqa: E402

app = create_app()

if __name__ == "__main__":
    from flask_migrate import upgrade

    from streampay.jobs import start_embedded

    with app.app_context():
        upgrade()
    start_embedded(app)
    app.run(host=app.config["HOST"], port=app.config["PORT"], threaded=True)
