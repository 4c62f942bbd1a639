"""Channel types come from the adaptors: every adaptor declares its type, and the registry channels_app reads
(validation, admin, the management API, the one-api importer) holds exactly the adaptor registries' types."""

import pytest
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.test import Client

from channels_app import channel_types, channels
from channels_app.channel_types import FLAVOURS, ChannelType, new_api
from channels_app.models import Channel
from relay.adaptors.base import Provider
from relay.adaptors.registry import ADAPTORS
from tasks.adaptors.registry import TASK_ADAPTORS
from tests.support.factories import make_channel

ALL_ADAPTORS: dict[str, Provider] = {**ADAPTORS, **TASK_ADAPTORS}


def test_the_registered_types_are_the_adaptor_registries_types_in_their_order():
    assert channel_types.slugs() == tuple(ALL_ADAPTORS)
    assert channel_types.registered() == {slug: adaptor.channel_type() for slug, adaptor in ALL_ADAPTORS.items()}


@pytest.mark.parametrize("slug", list(ALL_ADAPTORS))
def test_every_adaptor_declares_its_own_type(slug):
    adaptor = ALL_ADAPTORS[slug]
    declared = vars(type(adaptor))
    # An adaptor that extends another (Azure extends OpenAI) is another type: nothing may be inherited.
    assert {"slug", "label", "old_types"} <= set(declared)
    assert adaptor.slug == slug
    assert adaptor.label.strip()
    assert adaptor.old_types, "the one-api / new-api type numbers it imports"
    for old in adaptor.old_types:
        assert old.number > 0 and old.flavours and set(old.flavours) <= set(FLAVOURS)


def test_only_vertex_and_bedrock_have_their_own_key_rules_and_only_vertex_a_key_that_is_no_header():
    assert {slug for slug, kind in channel_types.registered().items() if kind.check} == {"vertex", "bedrock"}
    assert {slug for slug, kind in channel_types.registered().items() if not kind.key_in_headers} == {"vertex"}


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_each_old_type_number_imports_as_one_type(flavour):
    numbers = [
        old.number for kind in channel_types.registered().values() for old in kind.old_types if flavour in old.flavours
    ]
    assert len(numbers) == len(set(numbers)) == len(channel_types.old_types(flavour))


def test_a_type_claiming_another_types_old_number_is_refused():
    with pytest.raises(ImproperlyConfigured, match="new-api type 36 is both suno and karaoke"):
        channel_types.register(ChannelType("karaoke", "Karaoke", old_types=(new_api(36),)))
    assert "karaoke" not in channel_types.slugs()


def test_a_slug_registered_twice_is_refused():
    with pytest.raises(ImproperlyConfigured, match="registered twice"):
        channel_types.register(ChannelType("openai", "Another OpenAI"))
    assert channel_types.find("openai") == ADAPTORS["openai"].channel_type()


def test_the_type_column_has_no_choices_so_a_new_type_needs_no_migration():
    assert not Channel._meta.get_field("type").choices


@pytest.mark.django_db
def test_an_unknown_type_is_refused_naming_the_registered_ones():
    with pytest.raises(ValidationError) as refused:
        channels.create_channel(type="palm", key="sk-x", models=["gpt-4o"])
    assert refused.value.message_dict == {
        "type": [f"unknown channel type 'palm'; one of {', '.join(channel_types.slugs())}"]
    }


@pytest.mark.django_db
def test_the_management_api_schema_lists_the_registered_types():
    document = Client().get("/api/openapi.json").json()
    schemas = document["components"]["schemas"]
    for name in ("ChannelCreate", "ChannelPatch"):
        kind = schemas[name]["properties"]["type"]
        enum = kind.get("enum") or next(part["enum"] for part in kind["anyOf"] if "enum" in part)
        assert enum == list(channel_types.slugs())


def test_the_admin_form_offers_the_registered_types():
    from channels_app.admin import ChannelForm

    assert list(ChannelForm().fields["type"].choices) == channel_types.choices()


def test_admin_lists_channels_with_their_types_label_and_filters_by_type(root):
    make_channel("https://a.example", name="the-azure-one", type="azure")
    make_channel("https://o.example", name="the-openai-one")
    client = Client()
    client.force_login(root)
    page = client.get("/admin/channels_app/channel/?type__exact=azure").content.decode()
    assert "the-azure-one" in page and '<td class="field-type_label">Azure OpenAI</td>' in page
    assert "the-openai-one" not in page
    assert 'href="?type__exact=suno"' in page  # every registered type can be filtered on
