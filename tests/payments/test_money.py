import pytest

from payments.money import check_amount, fee_cents, from_stripe_currency, to_stripe_currency


@pytest.mark.parametrize(
    ("amount", "bps", "fee"), [(100, 1000, 10), (5, 1000, 1), (4, 1000, 0), (0, 1000, 0), (999, 0, 0)]
)
def test_fee_rounds_half_up_in_integer_cents(amount, bps, fee):
    # a pure function of integers: no account is touched, so no balance can move
    assert fee_cents(amount, bps) == fee


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "10", None])
def test_check_amount_refuses_non_positive_and_non_int(bad):
    # a pure check: no account is touched, so no balance can move
    with pytest.raises(ValueError):
        check_amount(bad)


def test_check_amount_and_currency_conversion():
    # pure checks and conversions: no account is touched, so no balance can move
    assert check_amount(7) == 7
    assert to_stripe_currency("USD") == "usd"
    assert from_stripe_currency("usd") == "USD"
    with pytest.raises(ValueError):
        fee_cents(-1, 10)
