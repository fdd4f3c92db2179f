import json

import numpy as np
import pytest
from conftest import run_cli

from dualcam_rt.errors import BadInput
from dualcam_rt.geometry import (
    ARRAY_SIDE_M,
    MICGEOM_FILE,
    MIN_MIC_SPACING_M,
    SPEED_OF_SOUND,
    Camera,
    get_geometry,
    read_micgeom_xml,
    spiral_layout,
    write_micgeom_xml,
)


def test_shipped_layout_is_the_documented_spiral_inside_the_board():
    mics = read_micgeom_xml(MICGEOM_FILE)
    assert mics.shape == (128, 3)
    np.testing.assert_allclose(mics, spiral_layout(), atol=1e-6)
    assert np.abs(mics[:, :2]).max() < ARRAY_SIDE_M / 2
    assert np.hypot(mics[:, 0], mics[:, 1]).min() > 0.03  # hole for the camera


def test_layout_keeps_documented_min_spacing_and_low_sidelobes():
    p = spiral_layout()[:, :2]
    d = np.linalg.norm(p[:, None] - p[None], axis=-1) + np.eye(len(p))
    assert d.min() >= MIN_MIC_SPACING_M - 1e-4
    k = 2 * np.pi * 4000 / SPEED_OF_SOUND
    u = np.linspace(-1, 1, 301)
    uu, vv = np.meshgrid(u, u)
    inside = uu**2 + vv**2 <= 1
    beam = np.abs(np.exp(1j * k * (np.outer(p[:, 0], uu[inside]) + np.outer(p[:, 1], vv[inside]))).sum(0)) ** 2
    beam /= len(p) ** 2
    mainlobe = 1.5 * (SPEED_OF_SOUND / 4000) / 0.43
    psl_db = 10 * np.log10(beam[np.hypot(uu[inside], vv[inside]) > mainlobe].max())
    assert psl_db < -14.0


def test_micgeom_xml_round_trips(tmp_path):
    mics = spiral_layout()
    write_micgeom_xml(tmp_path / "m.xml", mics)
    np.testing.assert_allclose(read_micgeom_xml(tmp_path / "m.xml"), mics, atol=1e-6)


def test_micgeom_xml_is_readable_by_acoular():
    acoular = pytest.importorskip("acoular")  # dev extra: always installed by `make test`
    mg = acoular.MicGeom(file=str(MICGEOM_FILE))
    np.testing.assert_allclose(mg.pos.T, read_micgeom_xml(MICGEOM_FILE), atol=1e-9)


def test_unreadable_geometry_is_a_clear_error(tmp_path):
    (tmp_path / "bad.xml").write_text("<MicArray><pos x='a'/></MicArray>")
    with pytest.raises(BadInput, match="cannot read"):
        read_micgeom_xml(tmp_path / "bad.xml")


def test_grid_is_row_major_and_aligned_with_camera_pixels():
    g = get_geometry()
    pts = g.grid_points
    assert pts.shape == (36 * 48, 3)
    assert np.allclose(pts[:, 2], 2.0)
    px = g.camera.project(pts)
    assert np.allclose(px[0], [640 / 96, 480 / 72])  # centre of the top-left acoustic pixel
    assert np.allclose(px[1] - px[0], [640 / 48, 0])  # next column: 13.33 px to the right
    assert np.allclose(px[48] - px[0], [0, 480 / 36])  # next row: 13.33 px down
    assert pts[0, 0] < 0 < pts[0, 1]  # top-left of the image is left and up in space


def test_camera_projection_round_trips_and_fov():
    cam = Camera()
    pix = np.array([[10.0, 20.0], [600.0, 470.0]])
    np.testing.assert_allclose(cam.project(cam.unproject(pix, 3.0)), pix)
    left_edge = cam.unproject(np.array([0.0, 240.0]), 1.0)
    assert np.degrees(np.arctan2(-left_edge[0], 1.0)) == pytest.approx(30.0)


def test_dead_channels_mask_and_validation():
    g = get_geometry()
    assert g.dead_channels == (79, 105) and g.active.sum() == 126
    with pytest.raises(BadInput, match="out of range"):
        get_geometry(2.0, (200,))


def test_geometry_json_command_reports_contract_fields():
    out = run_cli("geometry", "--json")
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["sample_rate"] == 12288 and d["nfft"] == 1024
    assert len(d["frequencies"]) == 512 and d["frequencies"][1] == 12.0
    assert np.array(d["mics"]).shape == (128, 3)
    assert d["dead_channels"] == [79, 105]
    assert d["grid"]["rows"] == 36 and d["grid"]["cols"] == 48
    assert np.array(d["grid"]["points"]).shape == (1728, 3)
    assert d["camera"]["width"] == 640 and d["camera"]["height"] == 480
