from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("set/", views.set_page, name="set"),
    path("get/", views.get_page, name="get"),
    path("add/", views.add_page, name="add"),
    path("get-or-set/", views.get_or_set_page, name="get_or_set"),
    path("many/", views.many_page, name="many"),
    path("delete/", views.delete_page, name="delete"),
    path("incr-decr/", views.incr_decr_page, name="incr_decr"),
    path("touch/", views.touch_page, name="touch"),
    path("versions/", views.versions_page, name="versions"),
    path("clear/", views.clear_page, name="clear"),
    path("async/", views.async_page, name="async"),
    path("stats/", views.stats_page, name="stats"),
    path("workers/", views.workers_page, name="workers"),
    path("near-workers/", views.near_workers_page, name="near_workers"),
]
