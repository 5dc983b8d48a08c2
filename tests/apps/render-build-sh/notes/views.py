from django.shortcuts import render

from notes.models import Note


def home(request):
    return render(request, "home.html", {"notes": Note.objects.order_by("id")})
