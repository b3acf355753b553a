# Guests we write ourselves, built freestanding into $(BUILD)/guests/.
guests:
