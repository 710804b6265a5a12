# main sweep point: 26% of events are celebrities (parallel data)
celeb_frac = 0.26
out_dir = 'out/celeb_26'
