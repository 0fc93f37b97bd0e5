from bot.domain.images import (
    MAX_IMAGE_BYTES,
    MAX_IMAGES_PER_MESSAGE,
    Attachment,
    describe_request,
    parse_descriptions,
    shown_images,
    still_attached,
)
from bot.domain.memory_text import edited_memory, with_images
from bot.domain.prompt import IMAGE_TOKENS, Budget, PersonaCard, PromptRequest, Turn, build_prompt, prompt_tokens


def test_only_images_endpoints_take_within_the_size_limit_are_shown_and_at_most_four() -> None:
    files = [
        Attachment("https://cdn/a.png", "image/png", 1000),
        Attachment("https://cdn/notes.txt", "text/plain", 10),
        Attachment("https://cdn/logo.svg", "image/svg+xml", 10),
        Attachment("https://cdn/photo.heic", "image/heic", 10),
        Attachment("https://cdn/scan.tiff", "image/tiff", 10),
        Attachment("https://cdn/huge.jpg", "image/jpeg", MAX_IMAGE_BYTES + 1),
        Attachment("https://cdn/unknown", None, 10),
        Attachment("https://cdn/b.jpg", "image/jpeg; charset=binary", 10),
        *(Attachment(f"https://cdn/{i}.webp", "IMAGE/WEBP", MAX_IMAGE_BYTES) for i in range(5)),
    ]
    shown = shown_images(files)
    assert shown == ("https://cdn/a.png", "https://cdn/b.jpg", "https://cdn/0.webp", "https://cdn/1.webp")
    assert len(shown) == MAX_IMAGES_PER_MESSAGE


def test_the_current_turns_images_go_with_its_message_and_count_in_the_budget() -> None:
    persona = PersonaCard(name="Hearth", personality="Warm.")
    current = [Turn("user", "look", "Ana", images=("u1",)), Turn("user", "and this", "Ana", images=("u2",))]
    history = [Turn("user", "earlier", "Ana")]
    request = PromptRequest(persona=persona, speaker="Ana", place="a DM", current=current, history=history)
    messages = build_prompt(request, Budget())
    assert messages[-1].images == ("u1", "u2") and messages[-1].content == "look\nand this"
    assert all(m.images == () for m in messages[:-1])
    without = build_prompt(PromptRequest(persona=persona, speaker="Ana", place="a DM", current=[Turn("user", "look")]))
    assert prompt_tokens(messages[-1:]) >= 2 * IMAGE_TOKENS > prompt_tokens(without[-1:])


def test_descriptions_are_read_one_per_image_numbered_or_not() -> None:
    assert parse_descriptions("1. a cat on a sofa\n2) a red bike", 2) == ["a cat on a sofa", "a red bike"]
    assert parse_descriptions("2. the second\n1. the first", 2) == ["the first", "the second"]
    assert parse_descriptions("A sunset over the sea.", 1) == ["A sunset over the sea."]
    assert parse_descriptions("1. only one", 3) == ["only one", None, None]
    assert parse_descriptions("", 1) == [None]
    long = parse_descriptions("1. " + "word " * 200, 1)[0]
    assert long is not None and len(long) <= 302


def test_a_description_request_shows_every_image_once_and_the_memory_text_holds_them() -> None:
    system, user = describe_request(["u1", "u2"], "my pets")
    assert system.images == () and user.images == ("u1", "u2") and "my pets" in user.content
    assert with_images("my pets", [None, None]) == "my pets\n[image]\n[image]"
    assert with_images("my pets", ["a cat", None]) == "my pets\n[image: a cat]\n[image]"
    assert with_images("", ["a cat"]) == "[image: a cat]"


def test_an_edit_that_removes_an_image_keeps_the_others_marks_in_the_memory() -> None:
    kept = ["https://cdn/1/a.png?ex=1&hm=x", "https://cdn/1/b.png?ex=1&hm=x", "https://cdn/1/c.png?ex=1&hm=x"]
    now = ["https://cdn/1/a.png?ex=2&hm=y", "https://cdn/1/c.png?ex=2&hm=y"]  # links signed anew
    assert still_attached(kept, now) == [0, 2]
    assert still_attached(kept, []) == []
    remembered = with_images("look", ["a cat", "a dog", None])
    assert edited_memory(remembered, "look", "look here", [0, 2]) == "look here\n[image: a cat]\n[image]"
    assert edited_memory(remembered, "look", "look", []) == "look"
    assert edited_memory(remembered, "look", "look again") == remembered.replace("look", "look again", 1)
    assert edited_memory(with_images("", ["a cat"]), "", "a caption") == "a caption\n[image: a cat]"
