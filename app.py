"""What `flask run` and gunicorn load: ``app = create_app()``."""

from website import create_app
from website.oauth2.keys import check_private_keys_at_start

app = create_app()
# A wrong KEY_ENCRYPTION_KEYS stops the server (and every `flask` command) here, in one line.
check_private_keys_at_start(app)
