"""Every `flask` command, one module per subject; ``init_app`` registers them all."""

import functools

import click

from website.cli import accounts, apis, clients, database, groups, keys, mail, operations, upstreams


def refusing_nul_characters(command: click.Command) -> click.Command:
    """Make ``command`` refuse, in one line, any argument or option holding a NUL character:
    PostgreSQL cannot store one, nor even compare with one, and no name, address or URI
    holds one (the web pages refuse them in http/guard.py)."""
    callback = command.callback

    @functools.wraps(callback)
    def checked(**params):
        for param in command.params:
            value = params.get(param.name)
            if any(isinstance(item, str) and "\x00" in item
                   for item in (value if isinstance(value, (list, tuple)) else (value,))):
                where = param.opts[0] if isinstance(param, click.Option) else param.human_readable_name
                raise click.ClickException(f"{where}: a NUL character (\\0) is not allowed.")
        return callback(**params)

    command.callback = checked
    return command


#: Every command, each refusing NUL characters in what it is given.
COMMANDS = tuple(map(refusing_nul_characters, (
    apis.create_api_command,
    apis.grant_api_command,
    apis.revoke_api_command,
    apis.list_apis_command,
    apis.delete_api_command,
    clients.create_initial_access_token_command,
    clients.create_client_command,
    clients.create_admin_api_client_command,
    database.initdb_command,
    database.purge_expired_command,
    accounts.create_user_command,
    groups.create_group_command,
    groups.delete_group_command,
    groups.list_groups_command,
    groups.add_to_group_command,
    groups.remove_from_group_command,
    groups.create_role_command,
    groups.delete_role_command,
    groups.assign_role_command,
    groups.unassign_role_command,
    groups.limit_client_command,
    accounts.unlock_user_command,
    accounts.list_users_command,
    accounts.export_users_command,
    accounts.import_users_command,
    accounts.invite_user_command,
    accounts.send_password_reset_command,
    accounts.verify_email_command,
    accounts.disable_user_command,
    accounts.enable_user_command,
    keys.rotate_keys_command,
    keys.rotate_key_encryption_key_command,
    keys.generate_key_encryption_key_command,
    mail.send_test_mail_command,
    mail.send_queued_mail_command,
    operations.check_config_command,
    operations.deliver_logouts_command,
    operations.backup_command,
    operations.restore_command,
    upstreams.add_upstream_command,
    upstreams.list_upstreams_command,
    upstreams.remove_upstream_command,
    upstreams.update_upstream_command,
)))


def init_app(app) -> None:
    """Register the commands with the app."""
    for command in COMMANDS:
        app.cli.add_command(command)
