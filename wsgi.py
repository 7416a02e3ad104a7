"""WSGI entry point: `gunicorn -c config/gunicorn.conf.py wsgi:app`."""
import os

from dotenv import load_dotenv

from ki2api.app import create_app
from ki2api.observability.logformat import configure_logging
from ki2api.settings import Settings

load_dotenv(os.environ.get("KI2API_DOTENV", ".env"))
settings = Settings.from_env(os.environ)
configure_logging(settings.log_level, settings.log_format)
app = create_app(settings)
