"""Cross-camera matching without Flink: topology gating (links, transit bounds, class), one-to-one assignment,
chains of global identities that persist across windows, re-emission when chains join, and retention."""


from jobs.reid.matching import IdentityState, MatchConfig, Summary, match
from jobs.reid.synthetic import appearance, observed, summary
from vigil.topology import Link, Topology

T0 = 1_700_000_000_000
TOPOLOGY = Topology([Link("a", "b", 0, 30), Link("b", "c", 5, 60)], {"a": "s", "b": "s", "c": "s"})


def S(*args, **kwargs) -> Summary:
    return Summary.from_record(summary(*args, **kwargs))


def pairs(records):
    return {(r["from_camera_id"], r["from_track_id"], r["to_camera_id"], r["to_track_id"]) for r in records}


def test_matches_the_same_objects_across_a_chain_of_cameras():
    state, out = IdentityState(), []
    people = [appearance(i) for i in range(6)]
    window = []
    for i, person in enumerate(people):
        t = T0 + i * 40_000
        window += [S("a", 100 + i, t, t + 8_000, observed(person, 0.05, 1)),
                   S("b", 200 + i, t + 12_000, t + 20_000, observed(person, 0.05, 2)),
                   S("c", 300 + i, t + 30_000, t + 36_000, observed(person, 0.05, 3))]
    out = match(window, TOPOLOGY, state, MatchConfig(min_similarity=0.5))
    assert pairs(out) == {("a", 100 + i, "b", 200 + i) for i in range(6)} | {("b", 200 + i, "c", 300 + i) for i in range(6)}
    for i in range(6):
        assert state.global_id(("c", 300 + i)) == state.global_id(("a", 100 + i)) == f"a:{100 + i}"
    assert len({r["match_id"] for r in out}) == len(out)


def test_topology_gates_candidates():
    person = appearance(7)
    window = [
        S("a", 1, T0, T0 + 5_000, person),
        S("b", 2, T0 + 5_000 + 31_000, T0 + 40_000, person),   # transit 31 s > 30 s
        S("c", 3, T0 + 10_000, T0 + 20_000, person),           # no a->c link
        S("b", 4, T0 + 8_000, T0 + 9_000, person, class_id=2),  # another class
        S("a", 5, T0 + 1_000, T0 + 2_000, person, final=False),  # still on camera a: cannot have left it
    ]
    assert match(window, TOPOLOGY, IdentityState(), MatchConfig(min_similarity=0.5)) == []


def test_one_to_one_assignment_prefers_the_better_pair_and_threshold_holds():
    p, q = appearance(1), appearance(2)
    window = [S("a", 1, T0, T0 + 1_000, p), S("a", 2, T0, T0 + 2_000, q),
              S("b", 10, T0 + 5_000, T0 + 9_000, observed(p, 0.1, 5)),
              S("b", 11, T0 + 6_000, T0 + 9_000, appearance(3))]  # a stranger: below the threshold
    out = match(window, TOPOLOGY, IdentityState(), MatchConfig(min_similarity=0.7))
    assert pairs(out) == {("a", 1, "b", 10)}


def test_identities_persist_across_windows_and_chains_join():
    state, person = IdentityState(), appearance(9)
    config = MatchConfig(min_similarity=0.5)
    b = S("b", 2, T0 + 10_000, T0 + 20_000, observed(person, 0.1, 1))
    c = S("c", 3, T0 + 30_000, T0 + 35_000, observed(person, 0.1, 2))
    first = match([b, c], TOPOLOGY, state, config)
    assert [(r["match_id"], r["global_id"]) for r in first] == [("b:2->c:3", "b:2")]
    # a later window brings the earlier sighting on a: the chain now starts there and b->c is re-emitted
    a = S("a", 1, T0, T0 + 5_000, observed(person, 0.1, 3))
    second = match([a, b, c], TOPOLOGY, state, config)
    assert {(r["match_id"], r["global_id"]) for r in second} == {("a:1->b:2", "a:1"), ("b:2->c:3", "a:1")}
    # overlapping windows never emit a pair twice
    assert match([a, b, c], TOPOLOGY, state, config) == []


def test_old_chains_are_forgotten_after_retention():
    state, person = IdentityState(), appearance(4)
    match([S("a", 1, T0, T0 + 1_000, person), S("b", 2, T0 + 5_000, T0 + 6_000, person)], TOPOLOGY, state,
          MatchConfig(min_similarity=0.5, retention_ms=60_000))
    assert state.successor
    match([S("a", 9, T0 + 200_000, T0 + 201_000, appearance(5))], TOPOLOGY, state, MatchConfig(retention_ms=60_000))
    assert not state.successor and not state.predecessor and not state.matches
