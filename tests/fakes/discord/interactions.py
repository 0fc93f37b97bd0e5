"""Slash commands, components, autocomplete and modals: the payloads a user's client sends, the callback and
webhook routes a bot answers them with, the commands it syncs, and how a test reads the answers.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tests.fakes.discord.limits import autocomplete_problems, message_problems, modal_problems
from tests.fakes.discord.payloads import JSON
from tests.fakes.discord.rest import Rest, RestCall, Route
from tests.fakes.discord.world import (
    ADMINISTRATOR,
    ATTACHMENT_SIZE_LIMIT,
    DISCORD_EPOCH_MS,
    EPHEMERAL,
    LOADING,
    MANAGE_WEBHOOKS,
    ApiError,
    FakeAttachment,
    FakeChannel,
    FakeChannelRef,
    FakeGuild,
    FakeUser,
    refuse_invalid,
)

# Interaction types.
APPLICATION_COMMAND, MESSAGE_COMPONENT, AUTOCOMPLETE, MODAL_SUBMIT = 2, 3, 4, 5
# Interaction callback types.
CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE = 4, 5, 6, 7
AUTOCOMPLETE_RESULT, MODAL = 8, 9
# The callbacks Discord accepts for each interaction type.
ALLOWED_CALLBACKS = {
    APPLICATION_COMMAND: {CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, MODAL},
    MESSAGE_COMPONENT: {CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE, MODAL},
    AUTOCOMPLETE: {AUTOCOMPLETE_RESULT},
    MODAL_SUBMIT: {CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE},
}

# Application-command option types.
SUB_COMMAND, SUB_COMMAND_GROUP, STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, MENTIONABLE, NUMBER, ATTACHMENT = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
)  # fmt: skip
# Modal components: text input, selects (string, user, role, mentionable, channel), file upload, radio group,
# checkbox group, checkbox; and the option type a select's picks resolve like.
TEXT_INPUT, FILE_UPLOAD, RADIO_GROUP, CHECKBOX_GROUP, CHECKBOX = 4, 19, 21, 22, 23
SELECT_OPTION_TYPES = {3: STRING, 5: USER, 6: ROLE, 7: MENTIONABLE, 8: CHANNEL}
# How long an interaction's token works for follow-ups and edits of its response, from the interaction's creation.
TOKEN_LIFETIME_SECONDS = 15 * 60
# How long Discord waits for an interaction's callback (its first answer), from the interaction's creation.
CALLBACK_WINDOW_SECONDS = 3.0


OptionValue = str | int | float | bool | FakeUser | FakeChannel | FakeChannelRef | FakeAttachment
"""A slash-command option's value; ids (int) also stand for users, channels and roles where the synced
option says so."""


ModalValue = str | bool | None | Sequence[str | int | FakeUser | FakeChannel | FakeChannelRef | FakeAttachment]
"""A modal field's value: text for a text input or radio group, a bool for a checkbox, a list for the rest."""


def _option_type(value: object) -> int:
    """The option type a value implies when the command was not synced to the fake."""
    if isinstance(value, FakeUser):
        return USER
    if isinstance(value, FakeChannel | FakeChannelRef):
        return CHANNEL
    if isinstance(value, FakeAttachment):
        return ATTACHMENT
    if isinstance(value, bool):
        return BOOLEAN
    return INTEGER if isinstance(value, int) else NUMBER if isinstance(value, float) else STRING


def _check_option(definition: JSON, value: object, what: str) -> None:
    """Refuse a value Discord's client would not send: not among the option's choices, or out of its limits."""
    if definition.get("choices"):
        allowed = [choice["value"] for choice in definition["choices"]]
        if value not in allowed:
            raise ValueError(f"{what}: {value!r} is not one of the choices {allowed}")
    low, high = definition.get("min_value"), definition.get("max_value")
    if isinstance(value, str):
        low, high, value = definition.get("min_length"), definition.get("max_length"), len(value)
    if not isinstance(value, int | float) or isinstance(value, bool):
        return
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{what}: {value!r} is outside [{low}, {high}] (lengths for text)")


def _callback_problems(kind: int, data: JSON) -> list[str]:
    """What Discord refuses in an interaction callback's ``data``, by callback type."""
    if kind == AUTOCOMPLETE_RESULT:
        return autocomplete_problems(data)
    if kind == MODAL:
        return modal_problems(data)
    return message_problems(data)


class Interactions(Rest):
    """Interactions on top of REST: what users send, and the bot's callbacks, follow-ups and synced commands."""

    def __init__(self, bot_name: str = "Hearth", **options: Any) -> None:
        super().__init__(bot_name, **options)
        self._commands: dict[int | None, list[JSON]] = {}
        self._interactions: dict[int, JSON] = {}
        self._acknowledged: set[int] = set()
        self._callbacks: dict[int, JSON] = {}
        self._originals: dict[str, int] = {}
        self._followups: dict[str, list[int]] = {}
        self.channel_webhooks: dict[int, JSON] = {}  # webhooks the bot made in channels, by id
        # Seconds an interaction's token lasts after the interaction was created, as on Discord (15 minutes); a
        # test sets 0 to stand for work that took longer than that: follow-ups and edits of the response then
        # answer 401 "Invalid Webhook Token", while the callback (the first answer) is still accepted.
        self.token_lifetime: float = TOKEN_LIFETIME_SECONDS
        # Seconds Discord waits for the callback after the interaction was created (3): one later answers 404
        # "Unknown interaction" (10062), and the person sees "This interaction failed". None (unless a test sets
        # CALLBACK_WINDOW_SECONDS): not enforced, as a loaded machine can stall any test's event loop past it.
        self.callback_window: float | None = None

    # -- what users send ------------------------------------------------------------------------------

    def interaction_payload(
        self, user: FakeUser, channel_id: int, *, type: int, data: JSON, message: JSON | None = None
    ) -> JSON:
        """An INTERACTION_CREATE payload from ``user`` (type 2 application command, 3 component,
        4 autocomplete, 5 modal submit); prefer :meth:`command_payload`, :meth:`component_payload`,
        :meth:`autocomplete_payload` and :meth:`modal_submit_payload`."""
        channel = self._channel(channel_id)
        guild = self.guilds.get(channel.guild_id) if channel.guild_id else None
        interaction_id = self.snowflake()
        payload: JSON = {
            "id": str(interaction_id),
            "application_id": str(self.application_id),
            "type": type,
            "data": data,
            "token": uuid.uuid4().hex,
            "version": 1,
            "channel_id": str(channel_id),
            "channel": channel.payload(),
            "locale": "en-US",
            "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
            "entitlements": [],
            "context": 0 if guild else 1,
        }
        if guild is not None:
            payload["guild_id"] = str(guild.id)
            payload["guild"] = {"id": str(guild.id), "locale": "en-US", "features": []}
            payload["guild_locale"] = "en-US"
            payload["member"] = self.member_payload(guild, user) | {"permissions": str(guild.permissions_of(user.id))}
            payload["app_permissions"] = str(guild.permissions_of(self.bot.id))
            payload["authorizing_integration_owners"] = {"0": str(guild.id)}
        else:
            payload["user"] = user.payload()
            payload["authorizing_integration_owners"] = {"1": str(user.id)}
        if message is not None:
            payload["message"] = message
        self._interactions[interaction_id] = payload
        return payload

    def command_payload(
        self, user: FakeUser, channel_id: int, name: str, options: Mapping[str, OptionValue] | None = None
    ) -> JSON:
        """A slash-command INTERACTION_CREATE payload: ``user`` ran ``/name`` in the channel.

        ``name`` is the qualified name: ``"hello"``, ``"memory show"`` (a subcommand) or
        ``"owner memory prune"`` (a subcommand in a group); Discord nests the words as SUB_COMMAND_GROUP (2)
        and SUB_COMMAND (1) options. ``options`` map option names to values: str, int, float, bool,
        :class:`FakeUser`, a channel (:class:`FakeChannel`, :class:`FakeChannelRef`), :class:`FakeAttachment`
        (kept on the fake's CDN), with users, members, channels, roles and attachments in ``data.resolved``.

        If the command was synced to the fake (for the channel's guild, else globally) its id, guild and
        option types are used: an ``int`` then stands for a user, channel or role id where the option says
        so, and a subcommand, option or required option that the definition lacks raises ``ValueError``
        (Discord would not let the user send it). Otherwise the types follow the Python values.
        """
        data = self._command_data(user, channel_id, name, options or {})
        return self.interaction_payload(user, channel_id, type=APPLICATION_COMMAND, data=data)

    def autocomplete_payload(
        self,
        user: FakeUser,
        channel_id: int,
        name: str,
        *,
        focused: str,
        value: str = "",
        options: Mapping[str, OptionValue] | None = None,
    ) -> JSON:
        """An APPLICATION_COMMAND_AUTOCOMPLETE (4) payload: ``user`` is typing ``value`` into option ``focused``.

        ``options`` are those already filled in. As Discord does, the focused option carries
        ``"focused": true`` and the raw text typed (whatever its type), and ``data.resolved`` is left out.
        Read the answer with :meth:`autocomplete_choices` or :meth:`wait_for_autocomplete`.
        """
        data = self._command_data(user, channel_id, name, {**(options or {}), focused: value}, focused=focused)
        return self.interaction_payload(user, channel_id, type=AUTOCOMPLETE, data=data)

    def component_payload(
        self,
        user: FakeUser,
        message: JSON,
        custom_id: str,
        *,
        component_type: int = 2,
        values: Sequence[str] | None = None,
    ) -> JSON:
        """A component INTERACTION_CREATE payload: ``user`` used a button (2) or select (3) on ``message``."""
        data: JSON = {"custom_id": custom_id, "component_type": component_type}
        if values is not None:
            data["values"] = list(values)
        current = self.messages.get(int(message["id"]), message)
        return self.interaction_payload(user, int(message["channel_id"]), type=3, data=data, message=current)

    def modal_submit_payload(
        self,
        user: FakeUser,
        channel_id: int,
        custom_id: str,
        values: Mapping[str, ModalValue],
        message: JSON | None = None,
    ) -> JSON:
        """A MODAL_SUBMIT (5) payload: ``user`` filled in and sent the modal ``custom_id``.

        If the bot showed that modal (see :meth:`modal_shown`), the submission mirrors its layout as Discord
        does: a Label (18) gives ``{"type": 18, "component": {...}}``, an action row (1) gives
        ``{"type": 1, "components": [...]}``, a text display (10) just its type and id. ``values`` are keyed
        by a field's ``custom_id`` or its label: a str for a text input (4) or radio group (21), a bool for a
        checkbox (23), a list for selects (3, 5-8: values, or users, roles and channels as for options),
        checkbox groups (22) and file uploads (19: :class:`FakeAttachment`). A text input left out keeps its
        pre-filled ``value`` (the bot's ``default``), other fields left out are sent empty; a required text
        input left empty or an unknown key raises ``ValueError``. ``message`` defaults to
        the message whose component opened the modal. A modal the bot did not show gets one action row per
        value, each holding a text input.
        """
        channel = self._channel(channel_id)
        guild = self.guilds.get(channel.guild_id) if channel.guild_id else None
        resolved: JSON = {}
        ids = itertools.count(1)
        shown = next(
            (
                (self._interactions[iid], body["data"])
                for iid, body in reversed(self._callbacks.items())
                if body.get("type") == MODAL and body["data"].get("custom_id") == custom_id
            ),
            None,
        )
        used: set[str] = set()

        def submitted(component: JSON, label: str | None = None) -> JSON:
            kind = int(component["type"])
            answer: JSON = {"type": kind, "id": component.get("id") or next(ids)}
            if kind == 1:
                return answer | {"components": [submitted(c) for c in component.get("components", [])]}
            if kind == 18:
                answer["component"] = submitted(component["component"], component.get("label"))
                return answer
            if "custom_id" not in component:
                return answer
            field_id = answer["custom_id"] = component["custom_id"]
            keys = [k for k in (field_id, label or component.get("label")) if k is not None and k in values]
            used.update(keys)
            value = values[keys[0]] if keys else None
            what = f"modal {custom_id!r} field {field_id!r}"
            if kind == TEXT_INPUT:
                value = component.get("value") if value is None else value  # a pre-filled value stays as it was
                if not value and component.get("required", True):
                    raise ValueError(f"{what} is required")
                if not isinstance(value, str | None):
                    raise TypeError(f"{what} is a text input: give a str")
                return answer | {"value": value or ""}
            if kind == CHECKBOX:
                return answer | {"value": bool(value)}
            if kind == RADIO_GROUP:
                return answer | {"value": value}
            picks: Sequence[object] = [] if value is None else [value] if isinstance(value, str | bool) else value
            if kind == FILE_UPLOAD:
                found = [self._resolve_value(ATTACHMENT, v, user, channel, guild, resolved, what=what) for v in picks]
                return answer | {"values": found}
            option_type = SELECT_OPTION_TYPES.get(kind, STRING)
            return answer | {
                "values": [
                    self._resolve_value(
                        option_type,
                        v,
                        user,
                        channel,
                        guild,
                        resolved,
                        what=what,
                        channel_types=component.get("channel_types"),
                    )
                    for v in picks
                ]
            }

        if shown is None:
            layout: list[JSON] = [{"type": 1, "components": [{"type": TEXT_INPUT, "custom_id": key}]} for key in values]
        else:
            trigger, modal = shown
            layout = modal.get("components", [])
            if message is None and "message" in trigger:
                message = self.messages.get(int(trigger["message"]["id"]), trigger["message"])
        components = [submitted(component) for component in layout]
        unknown = set(values) - used
        if unknown:
            raise ValueError(f"modal {custom_id!r} has no fields {sorted(unknown)}")
        data: JSON = {"custom_id": custom_id, "components": components}
        if resolved:
            data["resolved"] = resolved
        return self.interaction_payload(user, channel_id, type=MODAL_SUBMIT, data=data, message=message)

    def can_use_command(self, user: FakeUser, channel_id: int, name: str) -> bool:
        """Whether Discord would offer ``/name`` (its first word) to ``user`` in the channel.

        The command must be synced (for the guild or globally), allowed in this context (``contexts``, or
        the older ``dm_permission``), and in a guild the user must hold its ``default_member_permissions``
        (owners and administrators hold them all; ``"0"`` leaves it to administrators). Discord hides the
        command otherwise, so a test of the bot's own permission checks may still send it.
        """
        channel = self._channel(channel_id)
        found = self._synced(name.split()[0], channel.guild_id)
        if found is None:
            return False
        command = found[1]
        contexts = command.get("contexts")
        guild = self.guilds.get(channel.guild_id) if channel.guild_id else None
        if guild is None:
            return 1 in contexts if contexts is not None else command.get("dm_permission") is not False
        if contexts is not None and 0 not in contexts:
            return False
        required = command.get("default_member_permissions")
        held = guild.permissions_of(user.id)
        if required is None or held & ADMINISTRATOR:
            return True
        return int(required) != 0 and held & int(required) == int(required)

    def _synced(self, name: str, guild_id: int | None) -> tuple[int | None, JSON] | None:
        """The synced slash command called ``name`` for the guild (first) or globally, with its guild id."""
        for gid in (guild_id, None) if guild_id is not None else (None,):
            for command in self._commands.get(gid, []):
                if command["name"] == name and command.get("type", 1) == 1:
                    return gid, command
        return None

    def _command_data(
        self,
        user: FakeUser,
        channel_id: int,
        name: str,
        options: Mapping[str, OptionValue],
        *,
        focused: str | None = None,
    ) -> JSON:
        parts = name.split()
        if not 1 <= len(parts) <= 3:
            raise ValueError(f"a command's qualified name has one to three words, not {name!r}")
        channel = self._channel(channel_id)
        guild = self.guilds.get(channel.guild_id) if channel.guild_id else None
        data: JSON = {"id": str(self.snowflake()), "name": parts[0], "type": 1}
        kinds = [SUB_COMMAND_GROUP] * (len(parts) - 2) + [SUB_COMMAND] if len(parts) > 1 else []
        definitions: dict[str, JSON] | None = None
        found = self._synced(parts[0], channel.guild_id)
        if found is not None:
            gid, command = found
            data["id"] = command["id"]
            if gid is not None:
                data["guild_id"] = str(gid)
            level: list[JSON] = list(command.get("options") or [])
            for depth, part in enumerate(parts[1:]):
                sub = next((o for o in level if o["name"] == part and o["type"] == kinds[depth]), None)
                if sub is None:
                    raise ValueError(f"/{name}: the synced /{' '.join(parts[: depth + 1])} has no such subcommand")
                level = list(sub.get("options") or [])
            if any(o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP) for o in level):
                raise ValueError(f"/{name} is a group: name one of its subcommands")
            definitions = {o["name"]: o for o in level}
        resolved: JSON = {}
        leaf: list[JSON] = []
        for key, value in options.items():
            definition = definitions.get(key) if definitions is not None else None
            if definitions is not None and definition is None:
                raise ValueError(f"/{name} has no option {key!r}; it has {sorted(definitions)}")
            kind = int(definition["type"]) if definition is not None else _option_type(value)
            if key == focused:
                leaf.append({"name": key, "type": kind, "value": value, "focused": True})
                continue
            if definition is not None:
                _check_option(definition, value, f"/{name} {key}")
            option_value = self._resolve_value(
                kind,
                value,
                user,
                channel,
                guild,
                resolved,
                what=f"/{name} {key}",
                channel_types=definition.get("channel_types") if definition is not None else None,
            )
            leaf.append({"name": key, "type": kind, "value": option_value})
        if definitions is not None and focused is None:
            missing = [n for n, o in definitions.items() if o.get("required") and n not in options]
            if missing:
                raise ValueError(f"/{name} needs the required options {missing}")
        nested = leaf
        for part, kind in reversed(list(zip(parts[1:], kinds, strict=True))):
            nested = [{"type": kind, "name": part, "options": nested}]
        data["options"] = nested
        if resolved and focused is None:  # Discord sends no resolved data with autocomplete
            data["resolved"] = resolved
        return data

    def _resolve_value(
        self,
        kind: int,
        value: object,
        user: FakeUser,
        channel: FakeChannel,
        guild: FakeGuild | None,
        resolved: JSON,
        *,
        what: str,
        channel_types: Sequence[int] | None = None,
    ) -> Any:
        """The wire value of an option (or a select's pick) of type ``kind``, adding what it names to ``resolved``;
        a channel must be of one of ``channel_types`` when the option names them."""

        def wrong() -> TypeError:
            return TypeError(f"{what}: {value!r} does not fit option type {kind}")

        if kind == STRING:
            if not isinstance(value, str):
                raise wrong()
            return value
        if kind == INTEGER:
            if isinstance(value, bool) or not isinstance(value, int):
                raise wrong()
            return value
        if kind == NUMBER:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise wrong()
            return value
        if kind == BOOLEAN:
            if not isinstance(value, bool):
                raise wrong()
            return value
        if kind == ATTACHMENT:
            if not isinstance(value, FakeAttachment):
                raise wrong()
            attachment = self._store_attachment(channel.id, value.uploaded("options")) | {"ephemeral": True}
            if value.claimed_size is not None:
                attachment["size"] = value.claimed_size
            resolved.setdefault("attachments", {})[attachment["id"]] = attachment
            return attachment["id"]
        target: int
        if isinstance(value, FakeUser | FakeChannel | FakeChannelRef):
            target = value.id
        elif isinstance(value, int) and not isinstance(value, bool):
            target = value
        elif isinstance(value, str) and value.isdigit():
            target = int(value)
        else:
            raise wrong()
        role = next((r for r in guild.roles if int(r["id"]) == target), None) if guild is not None else None
        if kind == USER or (kind == MENTIONABLE and role is None):
            person = self.users.get(target)
            if person is None or isinstance(value, FakeChannel | FakeChannelRef):
                raise wrong()
            resolved.setdefault("users", {})[str(person.id)] = person.payload()
            if guild is not None and any(m.id == person.id for m in guild.members):
                member = self.member_payload(guild, person, with_user=False)
                member["permissions"] = str(guild.permissions_of(person.id))
                resolved.setdefault("members", {})[str(person.id)] = member
        elif kind in (ROLE, MENTIONABLE):
            if role is None:
                raise wrong()
            resolved.setdefault("roles", {})[str(target)] = role
        elif kind == CHANNEL:
            picked = self.channels.get(target)
            if picked is None or picked.guild_id is None or isinstance(value, FakeUser):
                raise wrong()
            if channel_types is not None and picked.type not in channel_types:  # Discord's client offers only those
                raise ValueError(f"{what}: a channel of type {picked.type} is not one of {channel_types}")
            partial = {k: v for k, v in picked.payload().items() if k != "permission_overwrites"}
            held = self.guilds[picked.guild_id].permissions_of(user.id)
            resolved.setdefault("channels", {})[str(target)] = partial | {"permissions": str(held)}
        else:
            raise wrong()
        return str(target)

    # -- what the bot answered ------------------------------------------------------------------------

    @property
    def interaction_responses(self) -> list[RestCall]:
        """Interaction callbacks; ``call.body`` holds ``type`` and ``data`` (e.g. ``flags`` 64 = ephemeral)."""
        return self.calls("interaction_callback")

    @property
    def followups(self) -> list[RestCall]:
        return self.calls("create_followup")

    def commands(self, guild_id: int | None = None) -> list[JSON]:
        """Application commands synced globally (``None``) or for a guild."""
        return list(self._commands.get(guild_id, []))

    def original_response(self, interaction: JSON) -> JSON | None:
        """The message answering an interaction, as it is now."""
        message_id = self._originals.get(interaction["token"])
        return self.messages.get(message_id) if message_id is not None else None

    def callback_of(self, interaction: JSON) -> JSON | None:
        """The accepted callback body answering ``interaction`` (``type`` and ``data``), or ``None`` yet."""
        return self._callbacks.get(int(interaction["id"]))

    def _answer(self, interaction: JSON) -> tuple[str, JSON | None]:
        """How ``interaction`` stands: ("answered", message), or a state without a visible answer."""
        callback = self.callback_of(interaction)
        if callback is None:
            return "not answered yet", None
        kind = int(callback["type"])
        if kind == AUTOCOMPLETE_RESULT:
            return "answered with autocomplete choices", None
        if kind == MODAL:
            return "answered with a modal", None
        message_id = self._originals.get(interaction["token"])
        message = self.messages.get(message_id) if message_id is not None else None
        if message is None:
            return "its response message was deleted", None
        if int(message.get("flags") or 0) & LOADING:
            return "deferred, still thinking", message
        return "answered", message

    def response_to(self, interaction: JSON) -> JSON:
        """The message answering ``interaction`` as users see it now, after all edits.

        It is the original response, however it came: a message callback (4), a deferral (5) then an edit
        of ``@original`` or a first follow-up, or for a component an update (7) or deferred update (6) of
        its message. It holds ``content``, ``embeds``, ``components``, ``flags`` and ``attachments`` (read
        their bytes with :meth:`attachment_bytes`). Raises ``AssertionError`` while there is none (see
        :meth:`wait_for_response`), or if a modal or autocomplete choices answered instead.
        """
        state, message = self._answer(interaction)
        if state != "answered" or message is None:
            raise AssertionError(f"interaction {interaction['id']} has no visible response: {state}")
        return message

    def is_ephemeral(self, interaction: JSON) -> bool:
        """Whether the response to ``interaction`` is ephemeral (set by the callback or deferral, as in Discord).

        A deferral counts even before its answer; raises ``AssertionError`` when there is no response message.
        """
        state, message = self._answer(interaction)
        if message is None:
            raise AssertionError(f"interaction {interaction['id']} has no response message: {state}")
        return bool(int(message.get("flags") or 0) & EPHEMERAL)

    def followups_of(self, interaction: JSON) -> list[JSON]:
        """Follow-up messages of ``interaction`` as they are now, in order, deleted ones left out.

        The follow-up that answered a deferral is the original response (:meth:`response_to`), not listed here.
        """
        ids = self._followups.get(interaction["token"], [])
        return [self.messages[i] for i in ids if i in self.messages]

    async def wait_for_response(
        self,
        interaction: JSON,
        predicate: Callable[[JSON], bool] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> JSON:
        """Wait until ``interaction`` has a visible response (a deferral's answer, not its "thinking…")
        for which ``predicate`` holds, if given, and return it (see :meth:`response_to`).

        Raises ``AssertionError`` at once if a modal or autocomplete choices answered, or after ``timeout``.
        """

        def ready() -> bool:
            state, message = self._answer(interaction)
            if state.startswith("answered with"):
                raise AssertionError(f"interaction {interaction['id']} was {state}")
            return state == "answered" and message is not None and (predicate is None or predicate(message))

        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(ready)
        except TimeoutError:
            state, message = self._answer(interaction)
            seen = "\n  ".join(f"{c.method} {c.path} -> {c.status}" for c in self.requests) or "(none)"
            raise AssertionError(
                f"no matching response to interaction {interaction['id']} within {timeout}s ({state}; "
                f"now {message!r}); recorded:\n  {seen}"
            ) from None
        return self.response_to(interaction)

    def autocomplete_choices(self, interaction: JSON) -> list[JSON]:
        """The choices (``{"name", "value"}``) the bot offered for an autocomplete interaction.

        Raises ``AssertionError`` if it has not answered yet (see :meth:`wait_for_autocomplete`).
        """
        callback = self.callback_of(interaction)
        if callback is None or int(callback["type"]) != AUTOCOMPLETE_RESULT:
            raise AssertionError(f"interaction {interaction['id']} has no autocomplete answer: {callback!r}")
        return list((callback.get("data") or {}).get("choices") or [])

    async def wait_for_autocomplete(self, interaction: JSON, timeout: float = 5.0) -> list[JSON]:  # noqa: ASYNC109
        """Wait for the bot's autocomplete answer to ``interaction`` and return its choices."""
        await self._wait(lambda: self.callback_of(interaction) is not None, timeout, "answer the autocomplete")
        return self.autocomplete_choices(interaction)

    def modal_shown(self, interaction: JSON) -> JSON | None:
        """The modal the bot answered ``interaction`` with (callback 9), or ``None``.

        The modal's ``custom_id``, ``title`` and ``components`` as sent, plus ``fields``: each input by its
        ``custom_id``, a Label's text copied in as ``label``. Submit it with :meth:`modal_submit_payload`.
        """
        callback = self.callback_of(interaction)
        if callback is None or int(callback["type"]) != MODAL:
            return None
        modal: JSON = dict(callback["data"])
        fields: dict[str, JSON] = {}

        def collect(component: JSON, label: str | None = None) -> None:
            if component.get("type") == 1:
                for child in component.get("components", []):
                    collect(child)
            elif component.get("type") == 18:
                collect(component["component"], component.get("label"))
            elif "custom_id" in component:
                fields[component["custom_id"]] = component | ({"label": label} if label is not None else {})

        for component in modal.get("components", []):
            collect(component)
        modal["fields"] = fields
        return modal

    async def wait_for_modal(self, interaction: JSON, timeout: float = 5.0) -> JSON:  # noqa: ASYNC109
        """Wait until the bot answers ``interaction`` and return the modal it showed (see :meth:`modal_shown`)."""
        await self._wait(lambda: self.callback_of(interaction) is not None, timeout, "answer the interaction")
        modal = self.modal_shown(interaction)
        if modal is None:
            answer = self.callback_of(interaction)
            raise AssertionError(f"interaction {interaction['id']} was answered without a modal: {answer}")
        return modal

    # -- routes ---------------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        webhook = "/webhooks/{application_id}/{token}"
        commands = "/applications/{application_id}/commands"
        guild_commands = "/applications/{application_id}/guilds/{guild_id}/commands"
        return [
            *super().routes(),
            ("POST", "/interactions/{interaction_id}/{token}/callback", "interaction_callback", self._callback),
            ("POST", webhook, "create_followup", self._create_followup),
            ("GET", webhook + "/messages/{message_id}", "get_webhook_message", self._webhook_message),
            ("PATCH", webhook + "/messages/{message_id}", "edit_webhook_message", self._edit_webhook_message),
            ("GET", "/channels/{channel_id}/webhooks", "channel_webhooks", self._channel_webhooks),
            ("POST", "/channels/{channel_id}/webhooks", "create_webhook", self._create_webhook),
            ("DELETE", webhook + "/messages/{message_id}", "delete_webhook_message", self._delete_webhook_message),
            ("GET", commands, "get_commands", lambda call: self.commands(None)),
            ("PUT", commands, "sync_commands", self._sync_commands),
            ("GET", guild_commands, "get_guild_commands", lambda call: self.commands(self._guild_id(call))),
            ("PUT", guild_commands, "sync_guild_commands", self._sync_commands),
        ]

    def _callback(self, call: RestCall) -> JSON | None:
        interaction = self._interactions.get(int(call.params["interaction_id"]))
        if interaction is None or interaction["token"] != call.params["token"]:
            raise ApiError(404, 10062, "Unknown interaction")
        interaction_id = int(interaction["id"])
        if interaction_id in self._acknowledged:
            raise ApiError(400, 40060, "Interaction has already been acknowledged.")
        created = ((interaction_id >> 22) + DISCORD_EPOCH_MS) / 1000
        forgotten = self.callback_window is not None and time.time() >= created + self.callback_window
        if forgotten:  # Discord forgot it: "This interaction failed"
            raise ApiError(404, 10062, "Unknown interaction")
        kind, data = int(call.body["type"]), call.body.get("data") or {}
        updates = kind in (DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE)
        allowed = ALLOWED_CALLBACKS.get(int(interaction["type"]), set())
        if kind not in allowed or (updates and "message" not in interaction):
            raise ApiError(
                400, 50035, f"Invalid Form Body: no callback {kind} to interaction type {interaction['type']}"
            )
        if updates:
            self._stored(interaction["message"]["id"])  # Unknown Message if it was deleted
        refuse_invalid(_callback_problems(kind, data))  # before acknowledging: a refused answer answers nothing
        self._acknowledged.add(interaction_id)
        self._callbacks[interaction_id] = call.body
        message: JSON | None = None
        if kind in (CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE):
            flags = int(data.get("flags") or 0) | (LOADING if kind == DEFERRED_CHANNEL_MESSAGE else 0)
            message = self._message(int(interaction["channel_id"]), self.bot, data | {"flags": flags}, call.files)
            message["interaction_metadata"] = {
                "id": interaction["id"],
                "type": interaction["type"],
                "user": (interaction.get("member") or interaction)["user"],
                "authorizing_integration_owners": interaction["authorizing_integration_owners"],
            }
            self._originals[interaction["token"]] = int(message["id"])
        elif kind == UPDATE_MESSAGE:
            message = self._edit(self._stored(interaction["message"]["id"]), data, call.files)
            self._originals[interaction["token"]] = int(message["id"])
        elif kind == DEFERRED_UPDATE_MESSAGE:  # @original is now the message the component is on
            self._originals[interaction["token"]] = int(interaction["message"]["id"])
        if call.query.get("with_response") not in ("1", "true", "True"):
            return None
        answer: JSON = {
            "interaction": {
                "id": interaction["id"],
                "type": interaction["type"],
                "response_message_loading": kind == DEFERRED_CHANNEL_MESSAGE,
                "response_message_ephemeral": bool(int((message or data).get("flags") or 0) & EPHEMERAL),
            }
        }
        if message is not None:
            answer["interaction"]["response_message_id"] = message["id"]
            answer["resource"] = {"type": kind, "message": message}
        return answer

    def _interaction_for(self, call: RestCall) -> JSON:
        interaction = next((i for i in self._interactions.values() if i["token"] == call.params["token"]), None)
        if interaction is None or int(call.params["application_id"]) != self.application_id:
            raise ApiError(404, 10015, "Unknown Webhook")
        created = ((int(interaction["id"]) >> 22) + DISCORD_EPOCH_MS) / 1000
        if time.time() >= created + self.token_lifetime:
            raise ApiError(401, 50027, "Invalid Webhook Token")
        return interaction

    def _webhook_target(self, call: RestCall) -> JSON:
        interaction = self._interaction_for(call)
        message_id = call.params["message_id"]
        if message_id == "@original":
            original = self._originals.get(interaction["token"])
            if original is None:
                raise ApiError(404, 10008, "Unknown Message")
            message_id = str(original)
        return self._stored(message_id)

    # A channel webhook's routes have the same shape as an interaction's (/webhooks/{id}/{token}): the id tells
    # them apart. The bot needs Manage Webhooks to list or make them, as on Discord.

    def _may_manage_webhooks(self, channel_id: int) -> FakeChannel:
        channel = self._channel(channel_id)
        guild = self.guilds.get(channel.guild_id or 0)
        if guild is None or not guild.permissions_of(self.bot.id) & MANAGE_WEBHOOKS:
            raise ApiError(403, 50013, "Missing Permissions")
        return channel

    def _channel_webhooks(self, call: RestCall) -> list[JSON]:
        channel = self._may_manage_webhooks(self._channel(call.channel_id).id)
        return [hook for hook in self.channel_webhooks.values() if int(hook["channel_id"]) == channel.id]

    def _create_webhook(self, call: RestCall) -> JSON:
        channel = self._may_manage_webhooks(self._channel(call.channel_id).id)
        hook_id = self.snowflake()
        hook: JSON = {
            "id": str(hook_id),
            "type": 1,
            "guild_id": str(channel.guild_id),
            "channel_id": str(channel.id),
            "name": (call.body or {}).get("name") or "webhook",
            "avatar": None,
            "token": f"hook-{hook_id}",
            "application_id": str(self.application_id),
            "user": self.bot.payload(),
        }
        self.channel_webhooks[hook_id] = hook
        return hook

    def _channel_webhook(self, call: RestCall) -> JSON | None:
        hook = self.channel_webhooks.get(int(call.params["application_id"]))
        if hook is not None and hook["token"] != call.params["token"]:
            raise ApiError(401, 50027, "Invalid Webhook Token")
        return hook

    def _execute_webhook(self, hook: JSON, call: RestCall) -> JSON | None:
        body = call.body or {}
        username = str(body.get("username") or hook["name"])
        # Discord refuses these as a webhook message's author, whatever the case.
        if any(word in username.lower() for word in ("clyde", "discord")) or username.lower() in ("everyone", "here"):
            raise ApiError(400, 50035, "Invalid Form Body")
        author = FakeUser(int(hook["id"]), username, bot=True)
        message = self._message(int(hook["channel_id"]), author, body, call.files)
        message["webhook_id"] = hook["id"]
        message["application_id"] = hook["application_id"]  # as Discord marks an application-owned webhook's messages
        message["author"] = message["author"] | {"avatar": None, "discriminator": "0000", "global_name": None}
        if body.get("avatar_url"):
            message["author_avatar_url"] = body["avatar_url"]  # not in Discord's answer: kept for assertions
        return message if call.query.get("wait") in ("true", "True", "1") else None

    def delete_channel_webhooks(self, channel_id: int) -> None:
        """An admin deletes the channel's webhooks: the messages they sent stay, and a call to one of them answers
        404, Unknown Webhook, as on Discord."""
        for hook_id, hook in list(self.channel_webhooks.items()):
            if int(hook["channel_id"]) == channel_id:
                del self.channel_webhooks[hook_id]

    def webhook_messages(self, channel_id: int) -> list[JSON]:
        """Messages sent through channel webhooks in ``channel_id``, oldest first, as they are now."""
        found = [m for m in self.messages.values() if m.get("webhook_id") and int(m["channel_id"]) == channel_id]
        return sorted(found, key=lambda m: int(m["id"]))

    def _create_followup(self, call: RestCall) -> JSON | None:
        hook = self._channel_webhook(call)
        if hook is not None:
            return self._execute_webhook(hook, call)
        interaction = self._interaction_for(call)
        if int(interaction["id"]) not in self._acknowledged:
            raise ApiError(404, 10015, "Unknown Webhook")
        original = self.messages.get(self._originals.get(interaction["token"], 0))
        if original is not None and int(original["flags"]) & LOADING:  # the first follow-up answers a deferral
            message = self._edit(original, call.body or {}, call.files)  # ...keeping the deferral's ephemerality
            message["flags"] = int(message["flags"]) & ~LOADING
            return message
        message = self._message(int(interaction["channel_id"]), self.bot, call.body or {}, call.files)
        self._followups.setdefault(interaction["token"], []).append(int(message["id"]))
        return message

    def _webhook_message(self, call: RestCall) -> JSON:
        return self._webhook_target(call)

    def _edit_webhook_message(self, call: RestCall) -> JSON:
        hook = self._channel_webhook(call)
        if hook is not None:
            sent = self._stored(call.params["message_id"])
            if sent.get("webhook_id") != hook["id"]:
                raise ApiError(404, 10008, "Unknown Message")
            return self._edit(sent, call.body or {}, call.files)
        message = self._edit(self._webhook_target(call), call.body or {}, call.files)
        message["flags"] = int(message.get("flags") or 0) & ~LOADING
        return message

    def _delete_webhook_message(self, call: RestCall) -> None:
        hook = self._channel_webhook(call)
        if hook is not None:  # a channel webhook deletes its own messages, as on Discord
            sent = self._stored(call.params["message_id"])
            if sent.get("webhook_id") != hook["id"]:
                raise ApiError(404, 10008, "Unknown Message")
            self._delete(sent)
            return
        self._delete(self._webhook_target(call))

    @staticmethod
    def _guild_id(call: RestCall) -> int:
        """The guild id in the path; Discord refuses one that is no snowflake (not a number of 64 bits)."""
        raw = call.params["guild_id"]
        if not (raw.isascii() and raw.isdigit() and int(raw) < 1 << 64):
            error = {"_errors": [{"code": "NUMBER_TYPE_COERCE", "message": f'Value "{raw}" is not snowflake.'}]}
            raise ApiError(400, 50035, "Invalid Form Body", {"guild_id": error})
        return int(raw)

    def _sync_commands(self, call: RestCall) -> list[JSON]:
        guild_id = self._guild_id(call) if "guild_id" in call.params else None
        if int(call.params["application_id"]) != self.application_id:
            raise ApiError(403, 50001, "Missing Access")
        if guild_id is not None and guild_id not in self.guilds:  # a server the bot is not in
            raise ApiError(403, 50001, "Missing Access")
        previous = {(c["name"], c.get("type", 1)): c["id"] for c in self._commands.get(guild_id, [])}
        synced = []
        for command in call.body or []:
            key = (command["name"], command.get("type", 1))
            defaults: JSON = {"type": 1, "description": "", "options": [], "default_member_permissions": None}
            extra: JSON = {"id": previous.get(key) or str(self.snowflake()), "application_id": str(self.application_id)}
            extra["version"] = str(self.snowflake())
            if guild_id is not None:
                extra["guild_id"] = str(guild_id)
            entry = defaults | command | extra
            if entry["default_member_permissions"] is not None:  # discord.py sends an int, Discord answers a str
                entry["default_member_permissions"] = str(entry["default_member_permissions"])
            synced.append(entry)
        self._commands[guild_id] = synced
        return synced
