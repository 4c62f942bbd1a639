"""Every price formula lives in billing.pricing: tokens, fixed prices, images and speech, each with the
explanation its log row shows."""

from billing.pricing import Prices, defaults, offers_image_size

PRICES = Prices(**defaults())


def test_images_cost_their_price_times_size_and_quality_multiplier_times_n():
    quota, formula = PRICES.quote("dall-e-3", "default").image_cost("1792x1024", "hd", 2)
    assert quota == 120_000  # $0.12 an image: hd at a large size is 3x the standard square
    assert formula == (
        "per image $0.04 x size/quality multiplier 3 (1792x1024, hd) x n 2 x 500000 quota/$ x group ratio 1 = 120000"
    )


def test_an_image_model_without_prices_costs_the_default_price_at_any_size():
    assert offers_image_size("some-image-model", "333x333")
    assert PRICES.quote("some-image-model", "default").image_cost("333x333", "standard", 1)[0] == 20_000


def test_a_size_the_model_does_not_offer_is_not_priced():
    assert offers_image_size("dall-e-2", "512x512") and not offers_image_size("dall-e-2", "1792x1024")


def test_speech_costs_its_input_characters_at_the_model_ratio():
    prices = Prices(**{**defaults(), "group_ratio": {"vip": 0.5}})
    assert prices.quote("tts-1", "vip").speech_cost(101) == (
        379,
        "101 input characters x model ratio 7.5 x group ratio 0.5 = 379",
    )
