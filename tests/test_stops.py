from ki2api.translate.stops import StopScanner


def feed_all(scanner, pieces):
    out = "".join(scanner.feed(p) for p in pieces)
    return out + scanner.flush()


def test_no_stops_passes_text_through_untouched():
    s = StopScanner([])
    assert s.feed("abc") == "abc"
    assert s.flush() == ""


def test_cuts_at_a_stop_split_across_pieces():
    s = StopScanner(["END"])
    assert feed_all(s, ["hello E", "N", "D world"]) == "hello "
    assert s.stopped and s.matched == "END"


def test_earliest_of_several_stops_wins():
    s = StopScanner(["zz", "\n\n"])
    assert feed_all(s, ["a\n\nb zz"]) == "a"
    assert s.matched == "\n\n"


def test_near_miss_is_released_at_the_end():
    s = StopScanner(["STOP"])
    assert feed_all(s, ["ends with STO"]) == "ends with STO"
    assert not s.stopped
