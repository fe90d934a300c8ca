"""What `flask run` and gunicorn load: ``app = create_app()``."""

from website import create_app

app = create_app()
