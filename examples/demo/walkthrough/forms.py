"""The few inputs the pages take: a value, a timeout, a delta."""

from django import forms

TIMEOUTS = [("5", "5 seconds"), ("30", "30 seconds"), ("300", "5 minutes"), ("none", "never (None)")]


def _timeout(choice: str) -> int | None:
    return None if choice == "none" else int(choice)


def timeout_field() -> forms.Field:
    """Seconds, or None for "never expire"."""
    return forms.TypedChoiceField(choices=TIMEOUTS, coerce=_timeout, initial="5")


class SetForm(forms.Form):
    value = forms.CharField(max_length=100, initial="hello, world!")
    timeout = timeout_field()


class TimeoutForm(forms.Form):
    timeout = timeout_field()


class ValueForm(forms.Form):
    value = forms.CharField(max_length=100)


class DeltaForm(forms.Form):
    delta = forms.IntegerField(initial=1)
