"""WSGI entry point: `gunicorn -c config/gunicorn.conf.py wsgi:app`."""
import logging
import os

from dotenv import load_dotenv

from ki2api import create_app
from ki2api.settings import Settings

load_dotenv(os.environ.get("KI2API_DOTENV", ".env"))
settings = Settings.from_env(os.environ)
logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
app = create_app(settings)
