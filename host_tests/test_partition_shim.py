# The esp32.Partition shim keeps ESP-IDF's semantics on a flash file in ESP-IDF's formats.

import esp32
import espidf
from dual import new_board, raises, rmtree

RUN_ON_MICROPYTHON = True

_BLOCK = 4096


def _teardown(tmp):
    esp32.detach()
    rmtree(tmp)


def test_fresh_board_runs_ota0_and_offers_ota1():
    tmp, _ = new_board(version="1.0.0")
    try:
        running = esp32.Partition(esp32.Partition.RUNNING)
        nxt = running.get_next_update()
        assert running.info() == (0, 0x10, 0x10000, 0x180000, "ota_0", False)
        assert nxt.info() == (0, 0x11, 0x190000, 0x180000, "ota_1", False)
        assert esp32.Partition(esp32.Partition.BOOT) == running
        assert nxt.ioctl(4, 0) == 0x180000 // _BLOCK
        assert nxt.ioctl(5, 0) == _BLOCK
        labels = [p.info()[4] for p in esp32.Partition.find(esp32.Partition.TYPE_APP)]
        assert labels == ["ota_0", "ota_1"]
        assert esp32.Partition("vfs").info()[:2] == (1, 0x81)
        assert raises(OSError, esp32.Partition, "nosuch").errno == 2  # ENOENT
    finally:
        _teardown(tmp)


def test_writeblocks_erases_then_writes():
    tmp, _ = new_board(version="1.0.0")
    try:
        slot = esp32.Partition(esp32.Partition.RUNNING).get_next_update()
        data = bytearray(_BLOCK * 2)
        for i in range(len(data)):
            data[i] = (i * 7) & 0xFF
        slot.writeblocks(3, data)
        slot.writeblocks(3, data)  # again: the simple form erases first, so this is allowed
        back = bytearray(len(data))
        slot.readblocks(3, back)
        assert back == data
        tail = bytearray(10)
        slot.readblocks(4, tail, 100)
        assert tail == data[_BLOCK + 100 : _BLOCK + 110]
    finally:
        _teardown(tmp)


def test_extended_write_needs_erased_flash():
    tmp, _ = new_board(version="1.0.0")
    try:
        slot = esp32.Partition(esp32.Partition.RUNNING).get_next_update()
        slot.writeblocks(0, bytearray(b"\xf0" * _BLOCK))
        slot.writeblocks(0, bytearray(b"\x30" * 16), 32)  # only clears bits: NOR allows it
        exc = raises(OSError, slot.writeblocks, 0, bytearray(b"\x0f" * 16), 64)
        assert exc.errno == 1 and "ESP_FAIL" in str(exc)  # would set bits that are 0
        back = bytearray(96)
        slot.readblocks(0, back)
        assert back == b"\xf0" * 32 + b"\x30" * 16 + b"\xf0" * 48  # nothing written
        assert slot.ioctl(6, 0) == 0  # erase the block, then the same write works
        slot.writeblocks(0, bytearray(b"\x0f" * 16), 64)
        slot.readblocks(0, back)
        assert back == b"\xff" * 64 + b"\x0f" * 16 + b"\xff" * 16
    finally:
        _teardown(tmp)


def test_misaligned_and_out_of_range_writes_fail_with_esp_idf_codes():
    tmp, _ = new_board(version="1.0.0")
    try:
        slot = esp32.Partition(esp32.Partition.RUNNING).get_next_update()
        blocks = slot.ioctl(4, 0)
        exc = raises(OSError, slot.writeblocks, 0, bytearray(100))
        assert exc.errno == -0x104 and "ESP_ERR_INVALID_SIZE" in str(exc)
        exc = raises(OSError, slot.writeblocks, blocks, bytearray(_BLOCK))
        assert exc.errno == -0x104
        exc = raises(OSError, slot.writeblocks, blocks + 1, bytearray(_BLOCK))
        assert exc.errno == -0x102 and "ESP_ERR_INVALID_ARG" in str(exc)
        exc = raises(OSError, slot.readblocks, blocks - 1, bytearray(_BLOCK + 1))
        assert exc.errno == -0x104
        assert raises(OSError, slot.ioctl, 6, blocks).errno == -0x104
        assert raises(ValueError, esp32.Partition, "ota_1", 512) is not None
    finally:
        _teardown(tmp)


def _write_image(slot, image):
    padded = bytearray(image)
    padded.extend(b"\xff" * (-len(padded) % _BLOCK))
    slot.writeblocks(0, padded)


def test_set_boot_rejects_an_invalid_image_and_keeps_otadata():
    tmp, path = new_board(version="1.0.0")
    try:
        slot = esp32.Partition(esp32.Partition.RUNNING).get_next_update()
        flash = espidf.Flash(path)
        before = flash.read(0xD000, 0x2000)
        image = bytearray(espidf.make_app_image("2.0.0"))
        image[100] ^= 0xFF  # one flipped bit in the app descriptor: checksum and SHA-256 fail
        _write_image(slot, image)
        exc = raises(OSError, slot.set_boot)
        assert exc.errno == -0x1503 and "ESP_ERR_OTA_VALIDATE_FAILED" in str(exc)
        wrong_chip = espidf.make_app_image("2.0.0", chip="esp32s3")
        _write_image(slot, wrong_chip)
        assert raises(OSError, slot.set_boot).errno == -0x1503
        assert flash.read(0xD000, 0x2000) == before
        assert esp32.Partition(esp32.Partition.BOOT).info()[4] == "ota_0"
        flash.close()
    finally:
        _teardown(tmp)


def test_set_boot_then_bootloader_rollback_states():
    tmp, path = new_board(version="1.0.0")
    try:
        slot = esp32.Partition(esp32.Partition.RUNNING).get_next_update()
        _write_image(slot, espidf.make_app_image("2.0.0"))
        slot.set_boot()
        assert esp32.Partition(esp32.Partition.BOOT).info()[4] == "ota_1"
        assert esp32.Partition(esp32.Partition.RUNNING).info()[4] == "ota_0"
        flash = espidf.Flash(path)
        parts = espidf.partitions(flash)
        _, entries = espidf.read_otadata(flash, parts)
        assert entries[1] == (2, espidf.OTA_IMG_NEW, True)  # the other sector, next sequence
        # Reset without confirming: NEW -> PENDING_VERIFY and ota_1 boots ...
        part, rolled_back = espidf.bootloader(flash, 0)
        assert (part[0], rolled_back) == ("ota_1", False)
        assert espidf.read_otadata(flash, parts)[1][1][1] == espidf.OTA_IMG_PENDING_VERIFY
        # ... and the next reset, still unconfirmed, aborts it and goes back to ota_0.
        part, rolled_back = espidf.bootloader(flash, 0)
        assert (part[0], rolled_back) == ("ota_0", True)
        assert espidf.read_otadata(flash, parts)[1][1][1] == espidf.OTA_IMG_ABORTED
        flash.close()
    finally:
        _teardown(tmp)


def test_confirmed_image_stays():
    tmp, path = new_board(version="1.0.0")
    try:
        slot = esp32.Partition(esp32.Partition.RUNNING).get_next_update()
        _write_image(slot, espidf.make_app_image("2.0.0"))
        slot.set_boot()
        flash = espidf.Flash(path)
        assert espidf.bootloader(flash, 0)[0][0] == "ota_1"
        esp32.attach(path, "esp32", "ota_1")  # the new image is running now
        esp32.Partition.mark_app_valid_cancel_rollback()
        parts = espidf.partitions(flash)
        assert espidf.read_otadata(flash, parts)[1][1] == (2, espidf.OTA_IMG_VALID, True)
        assert espidf.bootloader(flash, 0) == (parts[4], False)
        assert espidf.bootloader(flash, 0)[0][0] == "ota_1"
        flash.close()
    finally:
        _teardown(tmp)


def test_blank_otadata_boots_ota0_and_has_nothing_to_confirm():
    tmp, path = new_board()
    try:
        running = esp32.Partition(esp32.Partition.RUNNING)
        assert running.info()[4] == "ota_0"
        assert running.get_next_update().info()[4] == "ota_1"
        exc = raises(OSError, esp32.Partition.mark_app_valid_cancel_rollback)
        assert exc.errno == 1  # ESP_FAIL: "running firmware is factory"
        slot = running.get_next_update()
        _write_image(slot, espidf.make_app_image("2.0.0"))
        slot.set_boot()
        flash = espidf.Flash(path)
        _, entries = espidf.read_otadata(flash, espidf.partitions(flash))
        assert entries[0] == (2, espidf.OTA_IMG_NEW, True)  # first entry, seq = index + 1
        flash.close()
    finally:
        _teardown(tmp)
